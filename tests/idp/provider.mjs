// A real OpenID Connect provider for the single sign-on browser test (tests/e2e/test_sso_browser.py):
// npm's oidc-provider (pinned in package.json), on a loopback port, with one confidential client.
//
//   node tests/idp/provider.mjs PORT APP_PORT     (or IDP_PORT / APP_PORT in the environment)
//
// Sign-in is oidc-provider's built-in development interaction: any login and password are
// accepted, then a consent page. The login typed becomes the account: its `sub` and `email`
// claims, so the test picks the address (and so the role) at the provider's form.
// Signing out (st.logout) goes through its end-session page ("Yes, sign me out").
// Prints "ready ISSUER" on stdout once it listens; stops on SIGTERM or SIGINT.

import { Provider, interactionPolicy } from 'oidc-provider';

const port = Number(process.argv[2] ?? process.env.IDP_PORT);
const appPort = Number(process.argv[3] ?? process.env.APP_PORT);
if (!Number.isInteger(port) || !Number.isInteger(appPort)) {
  console.error('usage: node provider.mjs PORT APP_PORT');
  process.exit(2);
}

const issuer = `http://127.0.0.1:${port}`;
const CLIENT_ID = process.env.IDP_CLIENT_ID ?? 'centinela';
const CLIENT_SECRET = process.env.IDP_CLIENT_SECRET ?? 'a test client secret that is long enough';

// Streamlit's st.login asks for `prompt=select_account` (as Google and Microsoft understand it);
// oidc-provider refuses prompt values its policy does not name, so name it, with no check: each
// browser session has one account here, the one just signed in with.
const policy = interactionPolicy.base();
const selectAccount = new interactionPolicy.Prompt({ name: 'select_account', requestable: true });
selectAccount.checks.clear();
policy.add(selectAccount);

const provider = new Provider(issuer, {
  clients: [{
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    redirect_uris: [`http://127.0.0.1:${appPort}/oauth2callback`],
    // st.logout sends the browser to the end-session endpoint, to come back to the same URI.
    post_logout_redirect_uris: [`http://127.0.0.1:${appPort}/oauth2callback`],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    // Authlib's default (the secret in an HTTP Basic header), which is also oidc-provider's.
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  // PKCE: oidc-provider requires it only of public clients; it advertises S256, so Streamlit sends it anyway.
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  // Authlib reads the identity from the ID token (it does not call /me), so put the scopes'
  // claims there too.
  conformIdTokenClaims: false,
  async findAccount(ctx, sub) {
    return {
      accountId: sub,
      async claims() {
        return { sub, email: sub, email_verified: true, name: sub };
      },
    };
  },
  interactions: { policy },
  // Lifetimes, in seconds, long enough for one test on a busy machine (and naming them keeps the
  // provider from warning about its defaults).
  ttl: { AccessToken: 600, AuthorizationCode: 120, Grant: 600, IdToken: 600, Interaction: 600, Session: 600 },
  features: { devInteractions: { enabled: true } },
  // Signs the provider's own cookies (its interaction and session), for the one test it lives for.
  cookies: { keys: ['centinela test provider cookie key'] },
});
provider.proxy = false;

const server = provider.listen(port, '127.0.0.1', () => {
  console.log(`ready ${issuer}`);
});

function stop() {
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
