// The identity provider of the sign-in tests: oidc-provider (a certified OpenID Connect
// implementation) over HTTPS, configured for one client, tenure. Started by the Rust tests:
//
//   node oidc_provider.mjs   with, in the environment,
//     OIDC_CERT, OIDC_KEY     the server's certificate chain and key (PEM; the tests' own CA)
//     OIDC_REDIRECT           tenure's callback URL, the one redirect URI the client may use
//     OIDC_CLIENT_SECRET      the client's secret (client_secret_basic)
//     OIDC_ACCOUNTS           JSON: login -> { email, name, groups }; any other login signs in
//                             as <login>@example.com with no group
//
// It prints `listening https://localhost:PORT` once it takes requests (the issuer).
// The login page is oidc-provider's own development form: any login, any password.
//
// A few doors for the tests only, under /test/:
//   POST /test/rotate          a new signing key (a new Provider; the published keys change)
//   POST /test/forge?what=W    the next token answer's ID token is altered: `audience` (issued
//                              to another client), `expired` (exp and iat an hour ago), `key`
//                              (signed by a key the provider never published, same kid), then
//                              the provider answers as usual again
//   POST /test/groups?login=L&groups=a,b   the person's groups from now on
import { createServer } from 'node:https';
import { readFileSync } from 'node:fs';
import { generateKeyPairSync, createSign, randomUUID } from 'node:crypto';
import Provider from 'oidc-provider';

const accounts = JSON.parse(process.env.OIDC_ACCOUNTS || '{}');
const redirect = process.env.OIDC_REDIRECT;
const clientSecret = process.env.OIDC_CLIENT_SECRET || 'a-client-secret-of-the-tests';
if (!redirect) throw new Error('OIDC_REDIRECT: tenure\'s callback URL is needed');

function newKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { privateKey, jwk: { ...jwk, kid: randomUUID(), use: 'sig', alg: 'RS256' } };
}

let forge = null;
let key = newKey();

const b64 = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
function sign(header, payload, privateKey) {
  const input = `${b64(header)}.${b64(payload)}`;
  const s = createSign('RSA-SHA256').update(input).sign(privateKey).toString('base64url');
  return `${input}.${s}`;
}

// The ID token altered as the next forge asks, signed again.
function forged(idToken, what) {
  const [h, p] = idToken.split('.');
  const header = JSON.parse(Buffer.from(h, 'base64url'));
  const payload = JSON.parse(Buffer.from(p, 'base64url'));
  let signer = key.privateKey;
  const now = Math.floor(Date.now() / 1000);
  if (what === 'audience') payload.aud = 'another-client';
  else if (what === 'expired') { payload.iat = now - 7200; payload.exp = now - 3600; }
  else if (what === 'key') signer = newKey().privateKey;
  else throw new Error(`forge what=${what}?`);
  return sign(header, payload, signer);
}

function provider(issuer) {
  const p = new Provider(issuer, {
    clients: [{
      client_id: 'tenure',
      client_secret: clientSecret,
      redirect_uris: [redirect],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    }],
    jwks: { keys: [key.jwk] },
    scopes: ['openid', 'email', 'profile', 'groups'],
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'], groups: ['groups'] },
    // The claims the scopes grant go into the ID token itself, as Okta and Entra put groups.
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    cookies: { keys: ['the-tests-cookie-key'] },
    features: { devInteractions: { enabled: true } },
    async findAccount(ctx, id) {
      const a = accounts[id] || {};
      return {
        accountId: id,
        async claims() {
          return {
            sub: id,
            email: a.email ?? (id.includes('@') ? id : `${id}@example.com`),
            email_verified: true,
            name: a.name ?? id,
            groups: a.groups ?? [],
          };
        },
      };
    },
    // A first-party application: its scopes are granted without a consent page.
    async loadExistingGrant(ctx) {
      const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
      grant.addOIDCScope('openid email profile groups');
      grant.addOIDCClaims(['email', 'email_verified', 'name', 'groups']);
      await grant.save();
      return grant;
    },
  });
  p.on('server_error', (ctx, err) => console.error('provider error', err));
  p.use(async (ctx, next) => {
    await next();
    if (ctx.path === '/token' && forge && ctx.body && ctx.body.id_token) {
      const what = forge;
      forge = null;
      ctx.body = { ...ctx.body, id_token: forged(ctx.body.id_token, what) };
    }
  });
  return p;
}

const server = createServer({ cert: readFileSync(process.env.OIDC_CERT), key: readFileSync(process.env.OIDC_KEY) });
let current = null;
server.on('request', (req, res) => {
  const url = new URL(req.url, 'https://localhost');
  if (url.pathname === '/test/rotate' && req.method === 'POST') {
    key = newKey();
    current = provider(current.issuer);
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ kid: key.jwk.kid }));
    return;
  }
  if (url.pathname === '/test/groups' && req.method === 'POST') {
    const login = url.searchParams.get('login');
    const groups = (url.searchParams.get('groups') || '').split(',').filter(Boolean);
    accounts[login] = { ...(accounts[login] || {}), groups };
    res.writeHead(200).end('ok');
    return;
  }
  if (url.pathname === '/test/forge' && req.method === 'POST') {
    forge = url.searchParams.get('what');
    res.writeHead(200).end('ok');
    return;
  }
  current.callback()(req, res);
});
server.listen(0, '127.0.0.1', () => {
  const issuer = `https://localhost:${server.address().port}`;
  current = provider(issuer);
  console.log(`listening ${issuer}`);
});
process.on('SIGTERM', () => process.exit(0));
