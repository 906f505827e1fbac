// oidc-provider as an RFC 7662 authorization server for the interop tests.
// Usage: node server.mjs PORT
// Prints "ready <issuer>" on stdout once it listens on 127.0.0.1:PORT.
import Provider from 'oidc-provider';

const port = Number(process.argv[2] || 0);
if (!port) {
  console.error('usage: node server.mjs PORT');
  process.exit(2);
}
const issuer = `http://127.0.0.1:${port}`;

// The resource server's secret needs RFC 6749 §2.3.1 form-encoding in Basic.
const rsSecret = process.env.RS_SECRET || 'p@ss:w+rd%/ x';
const none = { grant_types: [], response_types: [], redirect_uris: [] };

const provider = new Provider(issuer, {
  clients: [
    { client_id: 'resource-server', client_secret: rsSecret, token_endpoint_auth_method: 'client_secret_basic', ...none },
    { client_id: 'resource-server-post', client_secret: rsSecret, token_endpoint_auth_method: 'client_secret_post', ...none },
    {
      client_id: 'app',
      client_secret: 'app-secret',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      scope: 'mcp:tools profile',
    },
    // An MCP client that gets its own tokens (the TypeScript SDK's
    // ClientCredentialsProvider in mcpclient.mjs). The SDK sends Basic
    // credentials without RFC 6749 §2.3.1 encoding, so its secret has no
    // character that the encoding would change.
    {
      client_id: 'mcp-client',
      client_secret: 'mcp-client-secret',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      scope: 'mcp:tools mcp:echo',
    },
    // A client whose access tokens are DPoP-bound (RFC 9449): it must send a
    // DPoP proof to the token endpoint, and its tokens' introspection
    // answers carry cnf.jkt, the thumbprint of the proof's key.
    // dpopclient.mjs gets its tokens and makes its proofs.
    {
      client_id: 'dpop-app',
      client_secret: 'dpop-app-secret',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      scope: 'mcp:tools mcp:echo',
      dpop_bound_access_tokens: true,
    },
  ],
  scopes: ['mcp:tools', 'mcp:echo', 'profile'],
  features: {
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    devInteractions: { enabled: false },
    // RFC 9449: a client that sends a DPoP proof to the token endpoint gets
    // a DPoP-bound token; no server nonce is asked for.
    dPoP: { enabled: true },
    // RFC 8707: a token requested with resource=URL carries aud=URL and
    // stays opaque, as an MCP client's token for an MCP server does. A
    // token requested without resource has no aud.
    resourceIndicators: {
      enabled: true,
      getResourceServerInfo: (_ctx, resourceIndicator) => ({
        audience: resourceIndicator,
        scope: 'mcp:tools mcp:echo profile',
        accessTokenFormat: 'opaque',
      }),
    },
  },
  ttl: { ClientCredentials: 600 },
});
provider.proxy = false;

const server = provider.listen(port, '127.0.0.1', () => {
  console.log(`ready ${issuer}`);
});
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => server.close(() => process.exit(0)));
}
