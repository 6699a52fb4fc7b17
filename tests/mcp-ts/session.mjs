// The agent session of the official TypeScript MCP SDK against `boxrun mcp`
// over stdio: list tools, create boxes, exec with streamed progress,
// write/read a file (also as a resource), bad arguments as tool errors with
// the API's codes, cancel a long exec, remove a box, disconnect.
//
// Environment: BOXRUN_BIN (the boxrun binary), BOXRUN_MCP_IMAGE (an image
// reference the server can create boxes from), plus whatever `boxrun mcp`
// needs to find its server (BOXRUN_STATE_DIR, BOXRUN_URL...).
// Run by `go test ./cmd/boxrun -run TestCLI_MCP/TypeScriptSDK`.
import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";

const bin = process.env.BOXRUN_BIN;
const image = process.env.BOXRUN_MCP_IMAGE;
assert.ok(bin && image, "set BOXRUN_BIN and BOXRUN_MCP_IMAGE");

const transport = new StdioClientTransport({ command: bin, args: ["mcp"], env: process.env, stderr: "inherit" });
const client = new Client({ name: "ts-session", version: "1.0.0" });
await client.connect(transport);

const step = (msg) => console.log(`- ${msg}`);
const call = async (name, args, options) => client.callTool({ name, arguments: args }, undefined, options);
const ok = async (name, args, options) => {
  const res = await call(name, args, options);
  assert.ok(!res.isError, `${name}: ${JSON.stringify(res.content)}`);
  return res.structuredContent;
};
const toolError = async (name, args, code) => {
  const res = await call(name, args);
  assert.equal(res.isError, true, `${name} ${JSON.stringify(args)} should fail`);
  assert.equal(res.structuredContent?.code, code, JSON.stringify(res.structuredContent));
  assert.ok(res.content[0].text.startsWith(`${code}: `), res.content[0].text);
};

const { tools } = await client.listTools();
const names = tools.map((t) => t.name).sort();
for (const want of ["create_box", "exec", "list_boxes", "read_file", "write_file", "list_dir", "stop_box", "start_box", "remove_box"]) {
  assert.ok(names.includes(want), `tool ${want} missing from ${names}`);
}
for (const t of tools) assert.equal(t.inputSchema.type, "object");
step(`tools: ${names.join(", ")}`);

const box = await ok("create_box", { image, name: "ts-session" });
assert.equal(box.status, "running");
const other = await ok("create_box", { image });
step(`created ${box.id} and ${other.id}`);

// exec with progress notifications carrying the output so far.
const progress = [];
const res = await ok(
  "exec",
  { box: "ts-session", shell: "for i in 1 2 3 4 5; do echo ts$i; sleep 0.5; done" },
  { onprogress: (p) => progress.push(p), timeout: 60000 },
);
assert.equal(res.exit_code, 0);
assert.equal(res.stdout, "ts1\nts2\nts3\nts4\nts5\n");
assert.ok(progress.length >= 2, `want several progress notifications, got ${progress.length}`);
assert.ok(progress.map((p) => p.message).join("").includes("ts1\n"));
step(`exec streamed ${progress.length} progress notifications`);

await ok("write_file", { box: box.id, path: "/root/ts.txt", content: "from typescript\n" });
const file = await ok("read_file", { box: box.id, path: "/root/ts.txt" });
assert.equal(file.content, "from typescript\n");
const resource = await client.readResource({ uri: "boxrun://ts-session/root/ts.txt" });
assert.equal(resource.contents[0].text, "from typescript\n");
const dir = await ok("list_dir", { box: box.id, path: "/root" });
assert.ok(dir.entries.some((e) => e.name === "ts.txt" && e.type === "file"));
step("files and resources");

await toolError("create_box", {}, "VALIDATION_ERROR");
await toolError("exec", { box: box.id, cmd: ["true"], timeout_seconds: -1 }, "VALIDATION_ERROR");
await toolError("read_file", { box: box.id, path: "../../etc/passwd" }, "VALIDATION_ERROR");
await toolError("exec", { box: "no-such-box", cmd: ["true"] }, "BOX_NOT_FOUND");
step("bad arguments are tool errors with API codes");

// Cancel a long exec: the SDK sends notifications/cancelled; the process dies.
const ac = new AbortController();
const long = call("exec", { box: box.id, cmd: ["sleep", "300"] }, { signal: ac.signal, timeout: 600000 });
await new Promise((r) => setTimeout(r, 2000));
ac.abort();
await assert.rejects(long);
let ps = "";
for (let i = 0; i < 50; i++) {
  ps = (await ok("exec", { box: box.id, cmd: ["ps"] })).stdout;
  if (!ps.includes("sleep 300")) break;
  await new Promise((r) => setTimeout(r, 200));
}
assert.ok(!ps.includes("sleep 300"), `sleep still running after cancel:\n${ps}`);
step("canceled exec left no process");

await ok("remove_box", { box: other.id });
const { boxes } = await ok("list_boxes", {});
assert.deepEqual(boxes.map((b) => b.id), [box.id]);
step("removed a box");

await client.close(); // ts-session is removed when boxrun mcp sees stdin close
console.log("typescript session ok");
