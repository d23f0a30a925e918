// The dashboard's live parts: progress bars that follow each unfinished batch's event
// stream, and requeue buttons that send the API token. The pages read fine without this.
"use strict";

const TOKEN_KEY = "newsflow-token";

function notice(text, isError) {
  const box = document.getElementById("notice");
  box.textContent = text;
  box.className = isError ? "error" : "ok";
  box.hidden = false;
}

function follow(widget) {
  const id = widget.dataset.batch;
  const source = new EventSource(`/batches/${id}/events`);
  const show = (event) => {
    const b = JSON.parse(event.data);
    const finished = b.done + b.failed;
    const bar = widget.querySelector("progress");
    bar.max = b.total || 1;
    bar.value = b.total ? finished : 1;
    widget.querySelector(".pct").textContent =
      `${b.total ? Math.floor((finished * 100) / b.total) : 100}%`;
    for (const count of widget.querySelectorAll("[data-count]")) {
      count.textContent = b[count.dataset.count];
    }
  };
  source.addEventListener("progress", show);
  source.addEventListener("finished", (event) => {
    show(event);
    widget.dataset.finished = "yes";
    source.close();
  });
  source.onerror = () => {
    if (widget.dataset.finished === "yes") source.close();
  };
}

async function requeue(button) {
  const token = document.getElementById("token").value;
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  const url = `/batches/${button.dataset.batch}/requeue?failed=true`;
  const response = await fetch(url, { method: "POST", headers });
  const body = await response.json();
  if (!response.ok) {
    notice(`Requeue refused: ${body.detail}`, true);
    return;
  }
  const sent = Object.entries(body.sent).map(([stage, n]) => `${n} ${stage}`).join(", ");
  notice(`Requeued batch ${button.dataset.batch}: ${sent || "nothing to send"}.`, false);
  for (const widget of document.querySelectorAll(`.progress[data-batch="${button.dataset.batch}"]`)) {
    if (widget.dataset.finished === "yes") {
      widget.dataset.finished = "no";
      follow(widget);
    }
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const field = document.getElementById("token");
  field.value = sessionStorage.getItem(TOKEN_KEY) || "";
  field.addEventListener("change", () => {
    sessionStorage.setItem(TOKEN_KEY, field.value);
    // For pages and event streams when the server guards reads (never used for writes).
    document.cookie = `newsflow_token=${encodeURIComponent(field.value)}; path=/; SameSite=Strict`;
  });
  for (const widget of document.querySelectorAll(".progress[data-finished='no']")) {
    follow(widget);
  }
  for (const button of document.querySelectorAll("button.requeue")) {
    button.addEventListener("click", () => requeue(button));
  }
});
