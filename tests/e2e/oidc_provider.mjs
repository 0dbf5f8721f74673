// A real OpenID provider on 127.0.0.1 for the OAuth tests (issue 17):
// panva's oidc-provider (a certified OpenID Connect implementation), pinned
// and installed by scripts/test.sh into .tools/oidc.
//
// Usage: node tests/e2e/oidc_provider.mjs CONFIG.json
//
// CONFIG.json (written by tests/e2e/oidc.py):
//   {
//     "port": 43123,                      // listens on 127.0.0.1:port
//     "jwks": "/path/keys.json",          // {"keys": [private JWKs]}; keys[0] signs
//     "scopes": ["mcp", "kb", "sql"],     // what a resource server may be granted
//     "ttl": 600,                         // access token lifetime, seconds
//     "clients": [{"client_id": "...", "client_secret": "...",
//                  "token_endpoint_auth_method": "client_secret_basic",
//                  "claims": {"groups": ["dba"]}}]   // extra access-token claims
//   }
//
// The issuer is http://127.0.0.1:PORT. Any absolute URL is accepted as a
// resource indicator (RFC 8707): a client_credentials token requested with
// `resource=URL` is a JWT (typ at+jwt) whose `aud` is exactly that URL, its
// `scope` the requested scopes that are in "scopes", signed with keys[0]
// (RS256 for an RSA key, ES256 for an EC P-256 key). A token requested
// without a resource is opaque. Dynamic client registration is open
// (/reg), for clients that register themselves.
//
// Prints "oidc-provider ready <issuer>" on stdout once listening. Never
// prints a token or a secret. SIGTERM/SIGINT: exits at once, dropping open
// connections, so that a test can take it down and start it again on the
// same port.

import { readFileSync } from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';

// oidc-provider lives in .tools/oidc/node_modules, not beside this script:
// OIDC_PROVIDER_MODULES names that node_modules directory (ESM imports do
// not read NODE_PATH).
const modules = process.env.OIDC_PROVIDER_MODULES
  ?? path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../.tools/oidc/node_modules');
const { default: Provider } = await import(pathToFileURL(path.join(modules, 'oidc-provider', 'lib', 'index.js')).href);

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const port = Number(config.port);
const issuer = `http://127.0.0.1:${port}`;
const { keys } = JSON.parse(readFileSync(config.jwks, 'utf8'));
if (!keys?.length) throw new Error(`no keys in ${config.jwks}`);
const signingKey = keys[0];
const signingAlg = signingKey.alg ?? (signingKey.kty === 'EC' ? 'ES256' : 'RS256');
const scopes = config.scopes ?? ['mcp'];
const ttl = config.ttl ?? 600;
const claimsByClient = Object.fromEntries((config.clients ?? []).map((c) => [c.client_id, c.claims ?? {}]));

const provider = new Provider(issuer, {
  jwks: { keys },
  clients: (config.clients ?? []).map((c) => ({
    client_id: c.client_id,
    client_secret: c.client_secret,
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    token_endpoint_auth_method: c.token_endpoint_auth_method ?? 'client_secret_basic',
  })),
  // An EC-only key set has no RS256 key for the clients' default ID token
  // algorithm, which the provider checks when it loads them.
  clientDefaults: {
    grant_types: ['client_credentials'],
    id_token_signed_response_alg: signingAlg,
    response_types: [],
    token_endpoint_auth_method: 'client_secret_basic',
  },
  // Statics advertised in scopes_supported; resource-server scopes are
  // granted through getResourceServerInfo below.
  scopes: ['openid', 'offline_access', ...scopes],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    registration: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // No default: a token is for the resource the client names.
      defaultResource: async () => undefined,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, resourceIndicator) => ({
        scope: scopes.join(' '),
        audience: resourceIndicator,
        accessTokenTTL: ttl,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: signingAlg, kid: signingKey.kid } },
      }),
    },
  },
  extraTokenClaims: async (_ctx, token) => {
    const extra = claimsByClient[token.clientId];
    return extra && Object.keys(extra).length ? extra : undefined;
  },
  ttl: {
    ClientCredentials: ttl,
    AccessToken: ttl,
  },
  cookies: { keys: ['oidc-e2e-cookie-key-not-a-secret'] },
  // Keep errors terse in the log: the default renders error descriptions
  // (never tokens) on stderr already.
});

provider.on('server_error', (_ctx, err) => console.error(`server_error: ${err.message}`));
provider.on('grant.error', (_ctx, err) => console.error(`grant.error: ${err.message}${err.error_description ? `: ${err.error_description}` : ''}`));

const server = http.createServer(provider.callback());
server.keepAliveTimeout = 5000;
server.listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider ready ${issuer} signing kid=${signingKey.kid} alg=${signingAlg} keys=${keys.map((k) => k.kid).join(',')}`);
});

const stop = () => {
  server.closeAllConnections?.();
  server.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
