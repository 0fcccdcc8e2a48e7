// The OpenID provider the console's sign-in tests run on loopback: the certified
// `oidc-provider` package with its development login pages, which take any name.
//
// Environment (set by tests/kit/oidc.py):
//   OIDC_MODULES   the node_modules directory `npm ci` filled from this folder's lock file
//   OIDC_PORT      the loopback port; the issuer is http://127.0.0.1:PORT
//   OIDC_CLIENT    JSON of the one client: client_id, client_secret, redirect_uris
//   OIDC_GROUPS_FILE  a JSON file: login name -> the groups its `groups` claim carries (a name not
//                  listed has no claim); read at every sign-in, so a test can move people between groups
//   OIDC_CODE_TTL  seconds an authorization code stays good
//   OIDC_FORGE_AUDIENCE  if set, the forger: every ID token leaves the token endpoint re-signed by
//                  the provider's own key with this audience instead of the client's (and the
//                  client as its authorized party, `azp`, which alone some libraries accept)
import { pathToFileURL } from "node:url";
import { join } from "node:path";
import { readFileSync } from "node:fs";

const modules = process.env.OIDC_MODULES;
const load = (name, entry) => import(pathToFileURL(join(modules, name, entry)).href);
const { default: Provider } = await load("oidc-provider", "lib/index.js");
const { generateKeyPair, exportJWK, SignJWT, decodeJwt } = await load("jose", "dist/webapi/index.js");

const port = Number(process.env.OIDC_PORT);
const issuer = `http://127.0.0.1:${port}`;
const groupsOf = () => JSON.parse(readFileSync(process.env.OIDC_GROUPS_FILE, "utf8"));
const forgedAudience = process.env.OIDC_FORGE_AUDIENCE || "";

const { privateKey } = await generateKeyPair("RS256", { extractable: true });
const signing = { ...(await exportJWK(privateKey)), kid: "test-key", alg: "RS256", use: "sig" };

const provider = new Provider(issuer, {
  clients: [{ ...JSON.parse(process.env.OIDC_CLIENT), grant_types: ["authorization_code"], response_types: ["code"] }],
  jwks: { keys: [signing] },
  pkce: { required: () => true },
  claims: { openid: ["sub"], profile: ["preferred_username", "name"], groups: ["groups"] },
  conformIdTokenClaims: false,
  ttl: { AuthorizationCode: Number(process.env.OIDC_CODE_TTL || 60) },
  cookies: { keys: ["a test provider's cookie key"] },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        const claims = { sub: id, preferred_username: id, name: `Test ${id}` };
        const groups = groupsOf();
        return id in groups ? { ...claims, groups: groups[id] } : claims;
      },
    };
  },
});

if (forgedAudience) {
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.path === "/token" && ctx.body && ctx.body.id_token) {
      const real = decodeJwt(ctx.body.id_token);
      const claims = { ...real, aud: forgedAudience, azp: real.aud };
      ctx.body.id_token = await new SignJWT(claims).setProtectedHeader({ alg: "RS256", kid: "test-key" }).sign(privateKey);
    }
  });
}

provider.listen(port, "127.0.0.1", () => console.log(`listening ${issuer}`));
