// Rating samples on the run and compare pages: j/k move a visible focus between samples,
// 1 rates 👍, 2 rates 👎, 0 takes the rating back (Clear), n goes to the note (Enter saves it,
// Escape leaves it). The buttons work by mouse too. Keys typed into a field are the field's,
// never shortcuts.
(function () {
  "use strict";
  const forms = Array.from(document.querySelectorAll("form.review"));
  if (!forms.length) return;
  let current = -1;

  const box = (form) => form.closest(".sample, .compare-cell") || form;

  function focusAt(index) {
    if (current >= 0) box(forms[current]).classList.remove("review-focus");
    current = Math.max(0, Math.min(forms.length - 1, index));
    const element = box(forms[current]);
    element.classList.add("review-focus");
    element.scrollIntoView({ block: "nearest" });
  }

  function show(form, rating) {
    const value = rating ? rating.value : "";
    form.dataset.value = value;
    form.querySelectorAll("button.rate").forEach((button) => {
      button.setAttribute("aria-pressed", String(button.value === value));
    });
    // Clear shows only when there is a rating; a cleared rating takes its note with it.
    form.querySelector("button.rate-clear").hidden = !rating;
    if (!rating) form.querySelector(".rating-note").value = "";
  }

  function problem(body, status) {
    const detail = body && body.detail;
    if (Array.isArray(detail)) return detail.map((d) => `${d.field}: ${d.msg}`).join("; ");
    return typeof detail === "string" ? detail : `The rating was not saved (HTTP ${status}).`;
  }

  async function save(form, value) {
    const state = form.querySelector(".rating-state");
    if (!value) {
      state.textContent = "Rate 👍 or 👎 first: a note goes with a rating.";
      return;
    }
    state.textContent = value === "clear" ? "Clearing…" : "Saving…";
    const token = form.querySelector("input[name=csrfmiddlewaretoken]").value;
    try {
      const response = await fetch(form.action, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": token },
        body: JSON.stringify({ value, note: form.querySelector(".rating-note").value }),
      });
      const body = await response.json().catch(() => null);
      if (!response.ok) {
        state.textContent = problem(body, response.status);
        return;
      }
      show(form, body.rating);
      state.textContent = body.rating ? "Saved" : "Cleared";
    } catch (error) {
      state.textContent = "The rating was not saved: the server could not be reached.";
    }
  }

  forms.forEach((form, index) => {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      focusAt(index);
      const button = event.submitter;
      save(form, button && button.name === "value" ? button.value : form.dataset.value);
    });
    const note = form.querySelector(".rating-note");
    note.addEventListener("focus", () => { if (current !== index) focusAt(index); });
    note.addEventListener("keydown", (event) => {
      // Enter would submit with the first button (👍): keep the rating given instead.
      if (event.key === "Enter") {
        event.preventDefault();
        save(form, form.dataset.value);
      }
    });
  });

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || event.defaultPrevented) return;
    const target = event.target;
    if (target instanceof Element && target.closest("input, textarea, select, [contenteditable]")) {
      if (event.key === "Escape") target.blur();
      return;
    }
    const key = event.key;
    if (key === "j") focusAt(current + 1);
    else if (key === "k") focusAt(current < 0 ? 0 : current - 1);
    else if (current >= 0 && (key === "1" || key === "2")) save(forms[current], key === "1" ? "up" : "down");
    else if (current >= 0 && key === "0") save(forms[current], "clear");
    else if (current >= 0 && key === "n") forms[current].querySelector(".rating-note").focus();
    else return;
    event.preventDefault();
  });
})();
