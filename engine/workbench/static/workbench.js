// engine dev: the author's page. The auth settings live in this page's memory only; they go to
// the module API of this same origin and nowhere else, and are never shown.
"use strict";

const page = { generation: -1, form: null, formText: "", settings: null, backupDir: "", chosen: new Map(), run: null, steps: {}, configRoot: null, forms: {} };
const POLL_MS = 400;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null && value !== false) node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}

async function api(path, body) {
  const options = { method: "POST", headers: { "content-type": "application/json" } };
  const answer = await fetch(path, { ...options, body: JSON.stringify(body) });
  let data = {};
  try { data = await answer.json(); } catch (error) { data = {}; }
  return { ok: answer.ok, status: answer.status, data };
}

function describe(answer) {
  const error = (answer.data && answer.data.error) || {};
  return `${error.code || "HTTP " + answer.status}: ${error.description || "no description"}`;
}

function setStatus(node, text, good) {
  node.textContent = text;
  node.className = good ? "good" : "bad";
}

// --------------------------------------------------------------------- live definition

function problemText(problem) {
  const kind = problem.warning ? "warning: " : "";
  return `${problem.file}:${problem.line}:${problem.column}: ${problem.pointer || "/"}: ${kind}${problem.message}`;
}

function showState(state) {
  const serving = state.serving ? `${state.serving.name} ${state.serving.version}` : "";
  document.getElementById("module-name").textContent = serving;
  const status = document.getElementById("status");
  if (!state.broken) setStatus(status, `Serving ${serving}: no errors.`, true);
  else if (state.serving) setStatus(status, `The last save has errors: still serving the last good ${serving}.`, false);
  else setStatus(status, "The module has errors: nothing is served until they are fixed.", false);
  const list = document.getElementById("problems");
  list.replaceChildren(...state.problems.map((p) => el("li", { class: p.warning ? "warning" : null }, problemText(p))));
}

async function poll() {
  try {
    const state = await (await fetch("/dev/state")).json();
    if (!page.backupDir) { page.backupDir = state.backupDir; newFolder(); }
    if (state.generation !== page.generation) {
      page.generation = state.generation;
      page.steps = state.steps || {};
      showState(state);
      if (state.serving) await loadForm();
    }
  } catch (error) {
    setStatus(document.getElementById("status"), "The engine does not answer (stopped?).", false);
  }
  setTimeout(poll, POLL_MS);
}

// --------------------------------------------------------------------- sign in

function fieldInput(field, prefix = "field") {
  const common = { id: `${prefix}-${field.id}`, name: field.id, required: field.required, title: field.tooltip, "aria-describedby": `${prefix}-error-${field.id}` };
  if (field.type === "dropdown") {
    const options = (field.items || []).map((item) => el("option", { value: item.value, selected: item.value === field.default }, item.label));
    return el("select", common, ...options);
  }
  if (field.type === "switch") return el("input", { ...common, type: "checkbox", role: "switch", checked: field.default === true });
  const kinds = { password: "password", number: "number" };
  const value = field.type === "password" || field.default === undefined ? null : String(field.default);
  return el("input", { ...common, type: kinds[field.type] || "text", placeholder: field.placeholder, min: field.minimum, max: field.maximum, value, autocomplete: field.type === "password" ? "off" : null });
}

// a form's columns of fields; the sign-in form's inputs are field-<id>, its errors error-<id>
function formColumns(form, prefix) {
  const errorId = (field) => (prefix === "field" ? `error-${field.id}` : `${prefix}-error-${field.id}`);
  return (form.columns || []).map((column) => el("fieldset", {}, ...column.fields.flatMap((field) => [
    el("label", { for: `${prefix}-${field.id}` }, field.label + (field.required ? " *" : "")),
    fieldInput(field, prefix),
    el("div", { class: "field-error", id: errorId(field) }),
  ])));
}

function renderForm(form) {
  const kept = readValues();
  document.getElementById("form-fields").replaceChildren(...formColumns(form, "field"));
  for (const [id, value] of Object.entries(kept)) writeValue(id, value);
}

async function loadForm() {
  const answer = await fetch("/api/schemas/auth");
  const result = document.getElementById("signin-result");
  if (answer.status === 404) { setStatus(result, "This module has no auth form: nothing to sign in with.", true); page.settings = {}; return; }
  const text = await answer.text();
  if (text === page.formText) return;
  page.formText = text;
  page.form = JSON.parse(text).schema;
  renderForm(page.form);
}

function fieldValue(input) {
  if (input.type === "checkbox") return input.checked;
  if (input.value === "") return undefined;
  return input.type === "number" ? Number(input.value) : input.value;
}

function readValues(container = "#form-fields") {
  const values = {};
  for (const input of document.querySelectorAll(`${container} [name]`)) values[input.name] = fieldValue(input);
  return values;
}

function writeValue(id, value) {
  const input = document.getElementById(`field-${id}`);
  if (!input || value === undefined) return;
  if (input.type === "checkbox") input.checked = value; else input.value = String(value);
}

function settingsOf(form, values) {
  const settings = {};
  for (const [key, template] of Object.entries(form.payload || {})) {
    settings[key] = typeof template === "string" && template in values ? values[template] : template;
  }
  return settings;
}

function showFieldErrors(errors) {
  for (const node of document.querySelectorAll(".field-error")) node.textContent = "";
  for (const error of errors) {
    const node = error.field && document.getElementById(`error-${error.field}`);
    if (node) node.textContent = error.description;
  }
}

async function signIn(event) {
  event.preventDefault();
  const result = document.getElementById("signin-result");
  setStatus(result, "Checking\u2026", true);
  const settings = settingsOf(page.form || {}, readValues());
  const answer = await api("/api/schemas/auth/validate", { auth: { settings } });
  if (!answer.ok) { setStatus(result, describe(answer), false); return; }
  const errors = answer.data.errors || [];
  showFieldErrors(errors);
  if (!answer.data.valid) {
    page.settings = null;
    setStatus(result, "Not signed in: " + errors.map((e) => e.description).join("; "), false);
    return;
  }
  page.settings = settings;
  setStatus(result, "Signed in.", true);
  const tree = document.getElementById("tree");
  tree.replaceChildren();
  document.getElementById("tree-note").textContent = "Roots, with their children listed as you open them.";
  document.getElementById("read-roots").hidden = false;
  await listInto(tree, "/api/roots", {});
}

// --------------------------------------------------------------------- resource tree

const SHOWN = ["id", "name", "type", "hasSubresources", "canBackup", "backupSeqGroup", "restoreSeqGroup", "displayCtx", "location", "labels"];

function nodeOf(resource, root) {
  resource.root = root || resource;
  const fields = Object.fromEntries(SHOWN.filter((key) => key in resource).map((key) => [key, resource[key]]));
  const children = el("ul", { role: "group", hidden: true });
  const line = el("div", { class: "node-line" });
  if (resource.canBackup) line.append(chooser(resource));
  if (resource.hasSubresources) {
    const toggle = el("button", { type: "button", class: "toggle", "aria-expanded": "false", "aria-label": `Open ${resource.name}` }, "+");
    toggle.addEventListener("click", () => expand(toggle, children, resource));
    line.append(toggle);
  }
  line.append(el("span", { class: "name" }, resource.name || resource.id || "(no name)"), el("span", { class: "kind" }, resource.type || ""));
  if (resource.hasSubresources) {
    const read = el("button", { type: "button", class: "read", "aria-label": `Test read ${resource.name}` }, "test read");
    read.addEventListener("click", () => testRead(resource));
    line.append(read);
  }
  if (resource.canBackup) {
    const step = stepChooser(resource);
    const sample = el("button", { type: "button", class: "read sample", "aria-label": `Sample a backup of ${resource.name}` }, "sample backup");
    sample.addEventListener("click", () => sampleBackup(resource, step.value));
    line.append(step, sample);
  }
  const details = el("details", {}, el("summary", {}, "fields and ctx"),
    el("pre", { class: "fields" }, JSON.stringify(fields, null, 2)),
    el("pre", { class: "ctx" }, JSON.stringify(resource.ctx, null, 2)));
  return el("li", { role: "treeitem", "data-name": resource.name || "", "data-type": resource.type || "" }, line, details, children);
}

function stepChooser(resource) {
  const steps = (page.steps[resource.type] || []).map((step) => el("option", { value: step.id, title: step.when ? `when ${step.when}` : null }, step.when ? `${step.id} (when…)` : step.id));
  return el("select", { class: "step", "aria-label": `Backup step to sample of ${resource.name}` }, el("option", { value: "" }, "every step, and below"), ...steps);
}

async function expand(toggle, children, resource) {
  const open = toggle.getAttribute("aria-expanded") === "true";
  toggle.setAttribute("aria-expanded", String(!open));
  toggle.textContent = open ? "+" : "\u2212";
  children.hidden = open;
  if (!open && !children.dataset.loaded) {
    children.dataset.loaded = "yes";
    await listInto(children, "/api/resources", { ctx: resource.ctx }, undefined, resource.root);
  }
}

async function listInto(list, path, body, paginationCtx, root) {
  const request = { ...body, auth: { settings: page.settings } };
  if (paginationCtx) request.paginationCtx = paginationCtx;
  const answer = await api(path, request);
  if (!answer.ok) { list.append(el("li", { class: "error" }, describe(answer))); return; }
  list.append(...answer.data.resources.map((resource) => nodeOf(resource, root)));
  for (const error of answer.data.errors || []) list.append(el("li", { class: "error" }, `${error.code}: ${error.description}`));
  if (answer.data.paginationCtx) {
    const more = el("button", { type: "button", class: "more" }, "more\u2026");
    const item = el("li", {}, more);
    more.addEventListener("click", () => { item.remove(); listInto(list, path, body, answer.data.paginationCtx, root); });
    list.append(item);
  }
  if (!list.children.length) list.append(el("li", { class: "kind" }, "(none)"));
}

// --------------------------------------------------------------------- test read

function exchangeRows(exchange) {
  const picked = exchange.selected === null ? "" : exchange.kept === null ? String(exchange.selected) : `${exchange.selected} → ${exchange.kept}`;
  const row = el("tr", { class: exchange.planned ? "exchange planned" : "exchange" },
    el("td", {}, exchange.label), el("td", { class: "url" }, exchange.url),
    el("td", { class: "status" }, exchange.planned ? "planned" : String(exchange.status)),
    el("td", {}, exchange.planned ? "" : exchange.milliseconds.toFixed(0)),
    el("td", { class: "selected" }, picked));
  return [row, el("tr", {}, el("td", { colspan: "5" }, ...exchangeDetails(exchange)))];
}

function exchangeDetails(exchange) {
  const shown = [];
  const add = (title, kind, text) => shown.push(el("details", {}, el("summary", {}, title), el("pre", { class: kind }, text)));
  if (exchange.planned) {
    add("request headers (not its credentials)", "headers", exchange.headers);
    add("request body", "sent", exchange.sent || "(no body)");
    return shown;
  }
  add("raw answer", "raw", exchange.body);
  if (exchange.records !== null) add(`selected records (${exchange.selected})`, "records", exchange.records);
  if (exchange.kept !== null) add(`kept by the filter (${exchange.kept} of ${exchange.selected})`, "kept", exchange.kept_records);
  return shown;
}

function showRead(title, requests, rightTitle, right) {
  const section = document.getElementById("read");
  section.hidden = false;
  document.getElementById("read-title").textContent = title;
  document.querySelector("#requests tbody").replaceChildren(...(requests || []).flatMap(exchangeRows));
  document.getElementById("mapped-title").textContent = rightTitle;
  document.getElementById("mapped").textContent = JSON.stringify(right, null, 2);
  section.scrollIntoView();
}

async function post(path, body) {
  const answer = await fetch(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  return answer.json();
}

async function testRead(resource) {
  const body = { auth: { settings: page.settings } };
  if (resource) body.ctx = resource.ctx;
  const read = await post("/dev/read", body);
  const what = resource ? `the children of ${resource.name}` : "the roots";
  const resources = (read.answer && read.answer.resources) || [];
  const good = read.status === 200;
  showRead(`Test read: ${what} (${read.path || "refused"})`, read.requests,
    good ? `Mapped resources (${resources.length})` : `The API answered ${read.status}`, good ? resources : read.answer || read);
}

async function sampleBackup(resource, step) {
  setStatus(document.getElementById("run-status"), `Sampling a backup of ${resource.name}\u2026`, true);
  const pages = Number(document.getElementById("pages").value) || 2;
  const asked = { auth: { settings: page.settings }, ctx: resource.ctx, pages, ...backupChoices() };
  if (step) asked.step = step;
  const read = await post("/dev/sample", asked);
  const good = read.status === 200;
  const objects = read.objects || [];
  const errors = good ? (read.answer.errors || []) : [];
  const bounds = `${step ? "step " + step : "every step"}, the first ${pages} page(s) of each listing${read.more ? " (more pages exist)" : ""}`;
  showRead(`Backup sample: ${resource.name}, ${bounds} (in memory, nothing kept)`, read.requests,
    good ? `Stored objects (${objects.length}), their first records${errors.length ? "; errors: " + errors.length : ""}` : `The API answered ${read.status}`,
    good ? (errors.length ? { objects, errors } : objects) : read.answer || read);
  document.getElementById("run-status").textContent = "";
}

// --------------------------------------------------------------------- run

function newFolder() {
  const stamp = new Date().toISOString().replace(/[-:]/g, "").replace(/\..*/, "");
  document.getElementById("folder").value = `${page.backupDir.replace(/\/$/, "")}/dev-${stamp}`;
}

function chooser(resource) {
  const box = el("input", { type: "checkbox", class: "choose", "aria-label": `Choose ${resource.name} to back up` });
  box.addEventListener("change", () => {
    const key = JSON.stringify(resource.ctx);
    if (box.checked) page.chosen.set(key, resource); else page.chosen.delete(key);
    const names = [...page.chosen.values()].map((chosen) => chosen.name);
    document.getElementById("chosen").textContent = names.length ? names.join(", ") : "none: tick the nodes to back up";
    document.getElementById("backup").disabled = !names.length;
    if (box.checked && page.configRoot !== resource.root) loadConfig(resource.root);
  });
  return box;
}

function showProgress(role, task) {
  const progress = task.progress || {};
  const bar = document.getElementById("progress");
  bar.max = progress.total || 1;
  bar.value = task.status === "DONE" ? bar.max : progress.done || 0;
  const count = `${progress.done || 0}/${progress.total ?? "?"} resources, ${progress.bytes || 0} bytes`;
  const errors = (task.errors || []).map((e) => `${e.code}: ${e.description}`).join("; ");
  setStatus(document.getElementById("run-status"), `${role} ${task.status}: ${count}${errors ? "; errors: " + errors : ""}`, !errors);
}

// --------------------------------------------------------------------- options

async function loadConfig(root) {
  page.configRoot = root;
  const auth = { settings: page.settings };
  const types = [...new Set([...page.chosen.values()].map((chosen) => chosen.type))];
  const [backup, scenarios] = await Promise.all([api("/api/config/backup", { auth, ctx: root.ctx }), api("/api/scenarios/restore", { auth, ctx: root.ctx, types })]);
  page.forms.backup = (backup.ok && backup.data.possibleOptions) || null;
  showOptions("backup-options", page.forms.backup, "bopt");
  const rules = backup.ok ? flatRules(backup.data.possibleExcludes || []) : [];
  document.getElementById("excludes").replaceChildren(...rules.map((rule) => el("label", { class: "exclude" },
    el("input", { type: "checkbox", "data-rule": JSON.stringify(rule) }), ` leave out ${rule.name}`)));
  const choices = ((scenarios.ok && scenarios.data.restoreScenarios) || []).map((scenario) => el("option", { value: scenario.type, title: scenario.description }, scenario.name));
  document.getElementById("scenario").replaceChildren(el("option", { value: "" }, "the module's own (in place)"), ...choices);
  await loadRestoreOptions();
}

function flatRules(rules) {
  return rules.flatMap((rule) => [{ id: rule.id, name: rule.name, ctx: rule.ctx }, ...flatRules(rule.subResources || [])]);
}

async function loadRestoreOptions() {
  if (!page.configRoot) return;
  const body = { auth: { settings: page.settings }, ctx: page.configRoot.ctx };
  const scenario = document.getElementById("scenario").value;
  if (scenario) body.scenario = scenario;
  const answer = await api("/api/config/restore", body);
  page.forms.restore = (answer.ok && answer.data.possibleOptions) || null;
  showOptions("restore-options", page.forms.restore, "ropt");
}

function showOptions(id, form, prefix) {
  document.getElementById(id).replaceChildren(...(form ? formColumns(form, prefix) : [el("p", { class: "kind" }, "(no options)")]));
}

function optionsOf(kind, container) {
  const form = page.forms[kind];
  return form ? settingsOf(form, readValues(container)) : undefined;
}

function backupChoices() {
  const excludes = [...document.querySelectorAll("#excludes input:checked")].map((box) => JSON.parse(box.dataset.rule));
  return { options: optionsOf("backup", "#backup-options"), excludes };
}

function restoreChoices() {
  const scenario = document.getElementById("scenario").value || undefined;
  return { scenario, options: optionsOf("restore", "#restore-options") };
}

function startOf(extra) {
  const start = { auth: { settings: page.settings }, taskUuid: crypto.randomUUID(), storage: { url: page.run.url } };
  return { ...start, ...page.run.items, ...extra };
}

async function runTask(role, extra) {
  const start = startOf(extra);
  const { auth, storage } = start;
  const name = extra.dryRun ? `${role} (dry run)` : role;
  let answer = await api("items" in start ? `/api/bulk/${role}` : `/api/${role}`, start);
  while (answer.ok && answer.data.status !== "DONE") {
    showProgress(name, answer.data);
    await new Promise((resolve) => setTimeout(resolve, 300));
    answer = await api("/api/status", { auth, taskUuid: start.taskUuid, ctx: answer.data.ctx, storage });
  }
  if (!answer.ok) { setStatus(document.getElementById("run-status"), `${name} failed: ${describe(answer)}`, false); return null; }
  showProgress(name, answer.data);
  return answer.data;
}

async function backUp() {
  const items = [...page.chosen.values()].map((resource) => ({ ctx: resource.ctx, name: resource.name }));
  page.run = { url: document.getElementById("folder").value, items: items.length === 1 ? { ctx: items[0].ctx } : { items } };
  for (const id of ["backup", "dry-run", "restore"]) document.getElementById(id).disabled = true;
  document.getElementById("writes").hidden = true;
  const task = await runTask("backup", backupChoices());
  document.getElementById("backup").disabled = false;
  if (!task) return;
  newFolder();
  document.getElementById("dry-run").disabled = false;
}

async function restore(dryRun) {
  return dryRun ? dryRunRestore() : restoreForReal();
}

async function dryRunRestore() {
  const status = document.getElementById("run-status");
  setStatus(status, "restore (dry run) running\u2026", true);
  const found = await api("/dev/restore", startOf({ ...restoreChoices(), dryRun: true }));
  const task = found.data.answer || {};
  if (!found.ok || found.data.status !== 200) { setStatus(status, `restore (dry run) failed: ${describe({ status: found.data.status, data: task })}`, false); return; }
  showProgress("restore (dry run)", task);
  const plan = task.dryRun || { writes: 0, requests: [] };
  status.textContent += `; a restore would make ${plan.writes} write(s)`;
  const rows = plan.requests.map((r) => el("tr", {}, el("td", {}, r.method), el("td", {}, r.path), el("td", {}, r.resource || "")));
  document.querySelector("#writes tbody").replaceChildren(...rows);
  document.getElementById("writes").hidden = false;
  document.getElementById("restore").disabled = false;
  const planned = found.data.requests.filter((exchange) => exchange.planned).length;
  showRead(`Restore dry run: the writes it would make (the first ${planned} with their bodies), nothing sent`, found.data.requests, "The task's answer", task);
  status.scrollIntoView({ block: "start" });
}

async function restoreForReal() {
  const task = await runTask("restore", restoreChoices());
  if (!task) return;
  const counts = task.restore || {};
  document.getElementById("run-status").textContent += `; written ${counts.written || 0}, conflicts ${counts.conflicts || 0}, skipped ${counts.skipped || 0}, failed ${counts.failed || 0}`;
}

document.getElementById("backup").addEventListener("click", backUp);
document.getElementById("dry-run").addEventListener("click", () => restore(true));
document.getElementById("restore").addEventListener("click", () => restore(false));
document.getElementById("read-roots").addEventListener("click", () => testRead(null));
document.getElementById("scenario").addEventListener("change", loadRestoreOptions);
document.getElementById("signin").addEventListener("submit", signIn);
poll();
