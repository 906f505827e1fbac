// A DPoP client (RFC 9449) for the interop tests, built on the npm package
// dpop, an independent implementation: every key pair and every proof comes
// from it, none from the code under test.
//
// Usage: node dpopclient.mjs < request.json
//
// The request is one JSON object:
//
//   {
//     "token_endpoint": "http://127.0.0.1:PORT/token",
//     "client_id": "dpop-app", "client_secret": "...",
//     "scope": "mcp:tools", "resource": "",   // resource: RFC 8707, optional
//     "alg": "ES256",                          // the JWS alg of the keys
//     "proofs": [{"method": "GET", "url": "http://127.0.0.1:PORT/mcp", "key": "token"}, ...]
//   }
//
// It makes two key pairs: "token", whose proof goes to the token endpoint
// and so binds the access token, and "other", which the token is not bound
// to. It gets an access token with the client credentials grant (RFC 6749
// §4.4) and a proof, then makes one proof for each entry of proofs, with the
// key it names, for the access token (ath). It prints one JSON object:
//
//   {"access_token": "...", "token_type": "DPoP", "proofs": ["<proof JWT>", ...]}
//
// Errors go to stderr with exit status 1; the token and the secret never do.
import { generateKeyPair, generateProof } from 'dpop';

async function readStdin() {
  const chunks = [];
  for await (const c of process.stdin) chunks.push(c);
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

// RFC 6749 §2.3.1: the client id and secret are form-encoded before Basic.
function basic(id, secret) {
  const enc = (s) => encodeURIComponent(s).replace(/%20/g, '+');
  return 'Basic ' + Buffer.from(`${enc(id)}:${enc(secret)}`).toString('base64');
}

async function token(req, keyPair) {
  const form = new URLSearchParams({ grant_type: 'client_credentials', scope: req.scope || '' });
  if (req.resource) form.set('resource', req.resource);
  let nonce;
  // One retry, with the server's nonce, if it asks for one (RFC 9449 §8).
  for (let attempt = 0; attempt < 2; attempt++) {
    const proof = await generateProof(keyPair, req.token_endpoint, 'POST', nonce);
    const resp = await fetch(req.token_endpoint, {
      method: 'POST',
      headers: {
        authorization: basic(req.client_id, req.client_secret),
        'content-type': 'application/x-www-form-urlencoded',
        dpop: proof,
      },
      body: form.toString(),
    });
    const body = await resp.json().catch(() => ({}));
    if (resp.ok) return body;
    if (attempt === 0 && body.error === 'use_dpop_nonce' && resp.headers.get('dpop-nonce')) {
      nonce = resp.headers.get('dpop-nonce');
      continue;
    }
    throw new Error(`token endpoint: ${resp.status} ${body.error || ''} ${body.error_description || ''}`);
  }
  throw new Error('token endpoint: asked for a nonce twice');
}

async function main() {
  const req = await readStdin();
  const alg = req.alg || 'ES256';
  const keys = {
    token: await generateKeyPair(alg),
    other: await generateKeyPair(alg),
  };
  const tok = await token(req, keys.token);
  if (typeof tok.access_token !== 'string' || tok.access_token === '') {
    throw new Error('token endpoint: no access_token in the answer');
  }
  const proofs = [];
  for (const p of req.proofs || []) {
    const key = keys[p.key || 'token'];
    if (!key) throw new Error(`unknown key ${JSON.stringify(p.key)}: want "token" or "other"`);
    proofs.push(await generateProof(key, p.url, p.method, undefined, tok.access_token));
  }
  process.stdout.write(JSON.stringify({ access_token: tok.access_token, token_type: tok.token_type, proofs }) + '\n');
}

main().catch((err) => {
  console.error(`dpopclient: ${err.message}`);
  process.exit(1);
});
