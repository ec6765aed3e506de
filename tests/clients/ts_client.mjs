// A small client on the official TypeScript SDK (@modelcontextprotocol/sdk), driven by the matrix tests.
// argv[2] is a JSON plan: {"server": {"command", "args", "env"} | {"url"}, "elicit": "accept"|"decline"|null,
// "calls": [{"name", "arguments"}]}. It prints one JSON line: the protocol version, the tool names, each
// call's outcome and every elicitation question it was asked. Errors go to stderr with exit code 2.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { ElicitRequestSchema } from "@modelcontextprotocol/sdk/types.js";

const plan = JSON.parse(process.argv[2]);
const questions = [];
const capabilities = plan.elicit ? { elicitation: {} } : {};
const client = new Client({ name: "matrix-ts-sdk", version: "1.0.0" }, { capabilities });

if (plan.elicit) {
  // Answer the way a person at a form would: accept with every boolean field ticked, or decline.
  client.setRequestHandler(ElicitRequestSchema, async (request) => {
    questions.push(request.params.message);
    if (plan.elicit !== "accept") return { action: plan.elicit };
    const content = {};
    for (const [key, schema] of Object.entries(request.params.requestedSchema?.properties ?? {})) {
      if (schema.type === "boolean") content[key] = true;
    }
    return { action: "accept", content };
  });
}

const transport = plan.server.url
  ? new StreamableHTTPClientTransport(new URL(plan.server.url))
  : new StdioClientTransport({
      command: plan.server.command, args: plan.server.args, env: plan.server.env, stderr: "ignore",
    });

// The SDK hands the negotiated version to transports that want it (HTTP); record it for stdio too.
let negotiated = null;
const setVersion = transport.setProtocolVersion?.bind(transport);
transport.setProtocolVersion = (version) => {
  negotiated = version;
  setVersion?.(version);
};

function texts(result) {
  return (result.content ?? []).filter((c) => c.type === "text").map((c) => c.text).join("\n");
}

try {
  await client.connect(transport);
  const tools = (await client.listTools()).tools.map((t) => t.name);
  const results = [];
  for (const call of plan.calls ?? []) {
    try {
      const result = await client.callTool({ name: call.name, arguments: call.arguments ?? {} });
      results.push({ isError: Boolean(result.isError), text: texts(result) });
    } catch (err) {
      results.push({ isError: true, rpcError: true, text: String(err?.message ?? err) });
    }
  }
  console.log(JSON.stringify({ protocol: negotiated, tools, results, questions }));
  await client.close();
} catch (err) {
  console.error(String(err?.stack ?? err));
  process.exit(2);
}
