// A throwaway OpenID Connect provider for the console's browser tests, on loopback only.
//   node provider.mjs PORT CLIENT_ID CLIENT_SECRET REDIRECT_URI ADMIN_GROUP_MEMBERS
// Anyone may sign in with any password (oidc-provider's development interactions); the
// identity is the login typed. Logins listed in ADMIN_GROUP_MEMBERS (comma-separated)
// carry the group `token-admins` in the `groups` claim. Prints "ready <issuer>" once up.
import Provider from 'oidc-provider';

const [port, clientId, clientSecret, redirectUri, members = ''] = process.argv.slice(2);
const admins = new Set(members.split(',').filter(Boolean));
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    redirect_uris: [redirectUri],
    grant_types: ['authorization_code'],
    response_types: ['code'],
  }],
  pkce: { required: () => true },
  claims: { openid: ['sub'], profile: ['preferred_username', 'groups'] },
  async findAccount(_ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, preferred_username: id, groups: admins.has(id) ? ['token-admins'] : [] };
      },
    };
  },
  cookies: { keys: ['test-only-cookie-key'] },
});
provider.proxy = false;
provider.listen(Number(port), '127.0.0.1', () => {
  console.log(`ready ${issuer}`);
});
