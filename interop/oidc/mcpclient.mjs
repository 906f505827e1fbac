// An MCP client built on the official TypeScript SDK (@modelcontextprotocol/sdk)
// that gets its own token: its ClientCredentialsProvider follows the server's
// 401 challenge to the RFC 9728 metadata, discovers the authorization server
// and asks it for a token with the client credentials grant.
//
// Usage:
//   MCP_CLIENT_SECRET=... node mcpclient.mjs --client-id ID --issuer ISSUER \
//     [--scope "a b"] [--call TOOL]... MCP_URL
//
// It connects to MCP_URL, lists the tools, calls each --call tool in order
// (filling every required string argument) and prints one JSON line:
//   connected, error  whether initialize succeeded, else why not
//   tools             the names tools/list returned
//   calls             per call: tool, ok, structuredContent or error {name, code, message}
//   requests          every HTTP request the SDK made: method, url (no query),
//                     status, the JSON-RPC method and tool name of MCP POSTs,
//                     the WWW-Authenticate challenge, and grant_type, scope
//                     and resource of token requests
//   redactions        how many times a token had to be cut from the output
// It never prints a token or a secret: tokens are replaced by "[token]"
// wherever they would appear. The exit code is 0 once the line is printed.
import { parseArgs } from 'node:util';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ClientCredentialsProvider } from '@modelcontextprotocol/sdk/client/auth-extensions.js';

// timeoutMs bounds the whole run, so that a server that never answers ends it.
const timeoutMs = 20_000;

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    'client-id': { type: 'string' },
    issuer: { type: 'string' },
    scope: { type: 'string' },
    call: { type: 'string', multiple: true, default: [] },
  },
});
const secret = process.env.MCP_CLIENT_SECRET;
if (positionals.length !== 1 || !values['client-id'] || !values.issuer || !secret) {
  console.error('usage: MCP_CLIENT_SECRET=... node mcpclient.mjs --client-id ID --issuer ISSUER [--scope S] [--call TOOL]... MCP_URL');
  process.exit(2);
}
const mcpURL = new URL(positionals[0]);

const out = { connected: false, tools: [], calls: [], requests: [], redactions: 0 };

// tokens holds every access token the provider was given, to keep them out of the output.
const tokens = new Set();
class Provider extends ClientCredentialsProvider {
  saveTokens(t) {
    if (t?.access_token) tokens.add(t.access_token);
    if (t?.refresh_token) tokens.add(t.refresh_token);
    super.saveTokens(t);
  }
}
const provider = new Provider({
  clientId: values['client-id'],
  clientSecret: secret,
  expectedIssuer: values.issuer,
  clientName: 'introspection-interop',
  scope: values.scope,
});

// loggingFetch records what the SDK sends and gets, without credentials.
async function loggingFetch(input, init = {}) {
  const url = new URL(input instanceof Request ? input.url : String(input));
  const entry = { method: (init.method || 'GET').toUpperCase(), url: url.origin + url.pathname };
  const body = init.body;
  if (body instanceof URLSearchParams) {
    entry.form = {};
    for (const k of ['grant_type', 'scope', 'resource']) {
      if (body.has(k)) entry.form[k] = body.get(k);
    }
  } else if (typeof body === 'string' && url.href.startsWith(mcpURL.href)) {
    try {
      const msg = JSON.parse(body);
      entry.rpc = msg.method;
      if (msg.method === 'tools/call') entry.tool = msg.params?.name;
    } catch {
      // Not JSON: logged without its JSON-RPC method.
    }
  }
  out.requests.push(entry);
  const res = await fetch(input, init);
  entry.status = res.status;
  const challenge = res.headers.get('www-authenticate');
  if (challenge) entry.challenge = challenge;
  return res;
}

function describe(err) {
  return {
    name: err?.constructor?.name || 'Error',
    code: typeof err?.code === 'number' ? err.code : undefined,
    message: String(err?.message ?? err),
  };
}

// argumentsFor fills each required string property of a tool's input schema.
function argumentsFor(tool) {
  const args = {};
  const schema = tool?.inputSchema || {};
  for (const name of schema.required || []) {
    if (schema.properties?.[name]?.type === 'string') args[name] = 'hello from the TypeScript SDK';
  }
  return args;
}

function print() {
  let line = JSON.stringify(out);
  for (const t of tokens) {
    const parts = line.split(t);
    out.redactions += parts.length - 1;
    line = parts.join('[token]');
  }
  if (out.redactions > 0) {
    line = JSON.stringify({ ...JSON.parse(line), redactions: out.redactions });
  }
  process.stdout.write(line + '\n');
}

async function run() {
  const client = new Client({ name: 'introspection-interop', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(mcpURL, { authProvider: provider, fetch: loggingFetch });
  try {
    await client.connect(transport);
    out.connected = true;
  } catch (err) {
    out.error = describe(err);
    return;
  }
  try {
    const listed = await client.listTools();
    out.tools = listed.tools.map((t) => t.name);
    for (const name of values.call) {
      const tool = listed.tools.find((t) => t.name === name);
      try {
        const res = await client.callTool({ name, arguments: argumentsFor(tool) });
        out.calls.push({ tool: name, ok: !res.isError, structuredContent: res.structuredContent });
      } catch (err) {
        out.calls.push({ tool: name, ok: false, error: describe(err) });
      }
    }
  } catch (err) {
    out.error = describe(err);
  } finally {
    await client.close().catch(() => {});
  }
}

const timer = setTimeout(() => {
  out.error = { name: 'Timeout', message: `no result within ${timeoutMs} ms` };
  print();
  process.exit(1);
}, timeoutMs);
await run();
clearTimeout(timer);
print();
