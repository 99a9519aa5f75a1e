"use strict";
// The QA report page: open a call from the worst-calls table; a violation (list or timeline) seeks its player.
(function () {
  function callOf(el) { return el.closest(".call"); }

  function seek(call, t) {
    const audio = call.querySelector("audio");
    call.open = true;
    if (audio) {
      audio.currentTime = t;
      audio.dataset.seeked = String(t);
      const p = audio.play();
      if (p && p.catch) p.catch(function () { /* no audio output, or the file is not there */ });
    }
    mark(call, t);
  }

  function mark(call, t) {
    const head = call.querySelector(".playhead");
    const d = parseFloat(call.querySelector(".timeline").dataset.duration) || 1;
    if (head) head.style.left = Math.min(100, 100 * t / d) + "%";
    call.querySelectorAll("table.transcript tr[data-start]").forEach(function (tr) {
      const a = parseFloat(tr.dataset.start), b = parseFloat(tr.dataset.end);
      tr.classList.toggle("playing", t >= a && t < b);
    });
  }

  document.addEventListener("click", function (ev) {
    const target = ev.target.closest("[data-t]");
    if (target && callOf(target)) {
      ev.preventDefault();
      seek(callOf(target), parseFloat(target.dataset.t));
      return;
    }
    const row = ev.target.closest("tr.open-call");
    if (row) {
      const call = document.getElementById(row.dataset.target);
      if (call) { call.open = true; call.scrollIntoView({ block: "start" }); }
    }
  });

  document.querySelectorAll(".call audio").forEach(function (audio) {
    audio.addEventListener("timeupdate", function () { mark(callOf(audio), audio.currentTime); });
  });

  // Charts are drawn while the page is still being read; size them to their final panels.
  if (window.Plotly) {
    document.querySelectorAll(".js-plotly-plot").forEach(function (d) { window.Plotly.Plots.resize(d); });
  }

  if (location.hash) {
    const call = document.querySelector(location.hash);
    if (call && call.classList.contains("call")) call.open = true;
  }
})();
