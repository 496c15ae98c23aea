// The tagger's page: POST the message to tag, show its entities as displaCy does.
// Text goes into the page as text nodes only (never as HTML), so a message cannot inject markup.
"use strict";

const NO_COLOUR = "#ddd";
let colours = {};

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function showError(message) {
  const box = document.getElementById("error");
  box.textContent = message;
  box.hidden = !message;
}

function renderLegend(info) {
  const legend = document.getElementById("legend");
  legend.replaceChildren();
  for (const category of info.categories) {
    if (category === "O") continue;
    const item = element("span", "legend-item", category);
    item.dataset.category = category;
    item.style.backgroundColor = info.colours[category] || NO_COLOUR;
    legend.append(item);
  }
  document.getElementById("head-info").textContent =
    `${info.model} (seed ${info.seed}) on ${info.encoder}: ${info.head}`;
}

function entityMark(text, entity) {
  const mark = element("mark", "entity", text.slice(entity.start, entity.end));
  mark.dataset.category = entity.entity_group;
  mark.title = `${entity.entity_group}, score ${entity.score.toFixed(3)}`;
  mark.style.backgroundColor = colours[entity.entity_group] || NO_COLOUR;
  mark.append(element("span", "entity-label", entity.entity_group));
  return mark;
}

function renderEntities(text, result) {
  const box = document.getElementById("result");
  box.replaceChildren();
  let position = 0;
  for (const entity of result.entities) {
    box.append(document.createTextNode(text.slice(position, entity.start)), entityMark(text, entity));
    position = entity.end;
  }
  box.append(document.createTextNode(text.slice(position)));
}

function renderWords(result) {
  const body = document.querySelector("#words tbody");
  body.replaceChildren();
  result.words.forEach((word, i) => {
    const row = element("tr");
    row.append(element("td", "", word), element("td", "", result.categories[i]),
      element("td", "score", result.scores[i].toFixed(3)));
    body.append(row);
  });
  document.getElementById("details").hidden = false;
}

async function tag(event) {
  event.preventDefault();
  const text = document.getElementById("text").value;
  const button = document.getElementById("submit");
  const status = document.getElementById("status");
  button.disabled = true;
  status.textContent = "tagging…";
  const started = performance.now();
  try {
    const response = await fetch("tag", {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({text}),
    });
    const body = await response.json();
    if (!response.ok) {
      showError(body.error || `error ${response.status}`);
      status.textContent = "";
      return;
    }
    showError("");
    renderEntities(text, body);
    renderWords(body);
    const count = body.entities.length;
    status.textContent = `${count} ${count === 1 ? "entity" : "entities"} in ${Math.round(performance.now() - started)} ms`;
    document.body.dataset.tagged = String(Number(document.body.dataset.tagged || 0) + 1);
  } catch (error) {
    showError(`the server did not answer: ${error.message}`);
    status.textContent = "";
  } finally {
    button.disabled = false;
  }
}

async function start() {
  document.getElementById("form").addEventListener("submit", tag);
  document.getElementById("text").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) document.getElementById("form").requestSubmit();
  });
  try {
    const info = await (await fetch("info")).json();
    colours = info.colours;
    renderLegend(info);
    document.body.dataset.ready = "true";
  } catch (error) {
    showError(`could not read the head's categories: ${error.message}`);
  }
}

start();
