// The spec editor. Estimate posts the form with fetch and swaps in the server-rendered result,
// so the page, the text and the chosen file stay as they are. Without this script (or when the
// fetch fails) the same button submits the page, which comes back with the estimate.
(function () {
  "use strict";
  const form = document.getElementById("editor");
  const feedback = document.getElementById("editor-feedback");
  const spec = document.getElementById("spec");
  if (!form || !feedback || !spec) return;
  // Not form.dataset.estimateUrl: the file input named "dataset" shadows the form's dataset property.
  const estimateUrl = form.getAttribute("data-estimate-url");
  let fallBack = false;

  form.addEventListener("submit", async function (event) {
    const button = event.submitter;
    if (fallBack || !button || button.value !== "estimate") return;
    event.preventDefault();
    const body = new FormData(form);
    body.set("action", "estimate");
    button.disabled = true;
    feedback.setAttribute("aria-busy", "true");
    let html = null;
    try {
      const response = await fetch(estimateUrl, { method: "POST", body: body, credentials: "same-origin" });
      // A redirect means the session ended (to the login page): let the full page handle it.
      if (response.ok && !response.redirected) html = await response.text();
    } catch (error) {
      html = null;
    }
    button.disabled = false;
    feedback.removeAttribute("aria-busy");
    if (html === null) {
      fallBack = true;
      form.requestSubmit(button);
      return;
    }
    feedback.innerHTML = html;
    feedback.querySelector("h2")?.scrollIntoView({ block: "nearest" });
  });

  // An error's "line N" selects that line of the spec.
  feedback.addEventListener("click", function (event) {
    const link = event.target.closest("[data-line]");
    if (!link) return;
    event.preventDefault();
    selectLine(Number(link.dataset.line));
  });

  function selectLine(number) {
    const lines = spec.value.split("\n");
    const index = Math.min(Math.max(number, 1), lines.length) - 1;
    let start = 0;
    for (let i = 0; i < index; i++) start += lines[i].length + 1;
    spec.focus();
    spec.setSelectionRange(start, start + lines[index].length);
    const lineHeight = parseFloat(getComputedStyle(spec).lineHeight) || 18;
    spec.scrollTop = Math.max(0, (index - 3) * lineHeight);
  }
})();
