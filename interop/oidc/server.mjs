// oidc-provider as an RFC 7662 authorization server for the interop tests.
// Usage: [INTEROP_CLIENT_AUTH=JSON] node server.mjs PORT
// Prints "ready <issuer>" on stdout once it listens on 127.0.0.1:PORT.
//
// INTEROP_CLIENT_AUTH, made by the Go package oidcprovider, holds test keys
// and certificates generated for one test run:
//
//   {
//     "jwks": {"<client_id>": {"keys": [<public JWK>]}, ...},
//     "mtls": {"port": N, "key": "<PEM>", "cert": "<PEM>", "ca": "<PEM>"}
//   }
//
// jwks are the public keys of the clients that authenticate with
// private_key_jwt or self_signed_tls_client_auth (RFC 7523, RFC 8705 §2.2);
// a client whose jwks are missing is not registered. With mtls, the
// provider also listens with HTTPS on 127.0.0.1:mtls.port with the
// certificate cert and its key, and asks every client for a certificate,
// which counts as verified when it chains to ca (RFC 8705 §2.1); the
// metadata lists that listener's endpoints as mtls_endpoint_aliases.
import { createServer } from 'node:https';
import { X509Certificate } from 'node:crypto';
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

const clientAuth = JSON.parse(process.env.INTEROP_CLIENT_AUTH || '{}');
const jwks = clientAuth.jwks || {};
const mtls = clientAuth.mtls;

// Resource servers that authenticate with a JWT (RFC 7523 §2.2): an HS256
// assertion made with a secret of at least 32 bytes, or one signed with the
// private key of the client's only jwks entry. The RSA client accepts RS256
// and PS256.
const jwtClients = [
  { client_id: 'resource-server-secret-jwt', client_secret: 'interop-test-only-client-secret-jwt-0123456789', token_endpoint_auth_method: 'client_secret_jwt', ...none },
];
for (const id of ['resource-server-es256', 'resource-server-es384', 'resource-server-rsa', 'resource-server-ed25519']) {
  if (jwks[id]) {
    jwtClients.push({ client_id: id, token_endpoint_auth_method: 'private_key_jwt', jwks: jwks[id], ...none });
  }
}

// Resource servers that authenticate with a TLS client certificate
// (RFC 8705): one signed by the test CA with this subject, and a
// self-signed one registered by its x5c.
const tlsClientSubject = 'CN=introspection interop client';
const tlsClients = [];
if (mtls) {
  tlsClients.push({ client_id: 'resource-server-mtls', token_endpoint_auth_method: 'tls_client_auth', tls_client_auth_subject_dn: tlsClientSubject, ...none });
  if (jwks['resource-server-self-signed-mtls']) {
    tlsClients.push({ client_id: 'resource-server-self-signed-mtls', token_endpoint_auth_method: 'self_signed_tls_client_auth', jwks: jwks['resource-server-self-signed-mtls'], ...none });
  }
}

// peerCertificate returns the certificate the client presented on the TLS
// connection of ctx, or undefined on plain HTTP or without one.
function peerCertificate(ctx) {
  const socket = ctx.req.socket;
  if (typeof socket.getPeerCertificate !== 'function') {
    return undefined;
  }
  const peer = socket.getPeerCertificate(false);
  if (!peer || !peer.raw) {
    return undefined;
  }
  return new X509Certificate(peer.raw);
}

const provider = new Provider(issuer, {
  clients: [
    { client_id: 'resource-server', client_secret: rsSecret, token_endpoint_auth_method: 'client_secret_basic', ...none },
    { client_id: 'resource-server-post', client_secret: rsSecret, token_endpoint_auth_method: 'client_secret_post', ...none },
    ...jwtClients,
    ...tlsClients,
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
    // RFC 8705: tls_client_auth and self_signed_tls_client_auth on the
    // HTTPS listener. The TLS layer asks for a certificate without
    // refusing any; certificateAuthorized says whether it chains to the
    // test CA.
    mTLS: {
      enabled: !!mtls,
      tlsClientAuth: !!mtls,
      selfSignedTlsClientAuth: !!mtls,
      getCertificate: peerCertificate,
      certificateAuthorized: (ctx) => ctx.req.socket.authorized === true,
      certificateSubjectMatches: (ctx, property, expected) => (
        property === 'tls_client_auth_subject_dn' && peerCertificate(ctx)?.subject === expected
      ),
    },
  },
  // The default client authentication methods and algorithms, with
  // ES384 added, and the RFC 8705 methods with mtls.
  clientAuthMethods: [
    'client_secret_basic', 'client_secret_jwt', 'client_secret_post', 'private_key_jwt', 'none',
    ...(mtls ? ['tls_client_auth', 'self_signed_tls_client_auth'] : []),
  ],
  enabledJWA: {
    clientAuthSigningAlgValues: ['HS256', 'RS256', 'PS256', 'ES256', 'ES384', 'Ed25519', 'EdDSA'],
  },
  discovery: mtls ? {
    mtls_endpoint_aliases: {
      token_endpoint: `https://127.0.0.1:${mtls.port}/token`,
      introspection_endpoint: `https://127.0.0.1:${mtls.port}/token/introspection`,
      revocation_endpoint: `https://127.0.0.1:${mtls.port}/token/revocation`,
    },
  } : {},
  ttl: { ClientCredentials: 600 },
});
provider.proxy = false;

const servers = [];
let listening = mtls ? 2 : 1;
const ready = () => {
  listening -= 1;
  if (listening === 0) {
    console.log(`ready ${issuer}`);
  }
};
servers.push(provider.listen(port, '127.0.0.1', ready));
if (mtls) {
  const tlsServer = createServer({
    key: mtls.key,
    cert: mtls.cert,
    ca: mtls.ca,
    requestCert: true,
    rejectUnauthorized: false,
  }, provider.callback());
  servers.push(tlsServer.listen(mtls.port, '127.0.0.1', ready));
}
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    let open = servers.length;
    for (const server of servers) {
      server.close(() => {
        open -= 1;
        if (open === 0) {
          process.exit(0);
        }
      });
    }
  });
}
