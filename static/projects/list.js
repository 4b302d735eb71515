// The project list follows its queued and processing projects: a small poll of each
// one's REST status endpoint updates the badge, the percentage and the stage.

const config = JSON.parse(document.getElementById("list-config").textContent);
const ZERO = "00000000-0000-0000-0000-000000000000";
const DISPLAY = {
  created: "Waiting for upload", queued: "Queued", processing: "Processing", done: "Done",
  failed: "Failed", cancelled: "Cancelled", expired: "Expired",
};

function stageName(stage) {
  if (!stage) return "";
  return config.stages[stage] || stage.charAt(0).toUpperCase() + stage.slice(1).replaceAll("_", " ");
}

async function refresh(card) {
  const response = await fetch(config.status_api.replace(ZERO, card.dataset.running), {
    credentials: "same-origin", headers: { Accept: "application/json" },
  });
  if (!response.ok) return true; // deleted or gone: stop following it
  const project = await response.json();
  const badge = card.querySelector("[data-role=badge]");
  badge.className = `badge badge--${project.status}`;
  badge.textContent = DISPLAY[project.status] || project.status;
  const box = card.querySelector("[data-role=progress]");
  const progress = project.progress || {};
  const running = project.status === "processing";
  box.hidden = !running;
  if (running) {
    const percent = Math.floor((Number(progress.overall) || 0) * 100);
    box.querySelector("progress").value = percent;
    box.querySelector("[data-role=progress-text]").textContent = `${percent} % · ${stageName(progress.stage || "starting")}`;
  }
  return !["queued", "processing"].includes(project.status);
}

let cards = [...document.querySelectorAll("[data-running]")];

async function tick() {
  const finished = await Promise.all(cards.map((card) => refresh(card).catch(() => false)));
  cards = cards.filter((_, i) => !finished[i]);
  if (cards.length) setTimeout(tick, config.poll_ms);
}

if (cards.length) setTimeout(tick, config.poll_ms);
