// A strict OAuth2 identity provider (client credentials and refresh token grants) for the
// engine's tests.
//
// oauth2-mock-server accepts any client and any token; the hooks below make it accept only one
// client (id and secret, by HTTP Basic or in the form body), issue tokens that expire after a
// set lifetime, and answer /userinfo only for tokens it issued that have not expired. GET /stats
// counts the token requests, so tests can check that a client caches and refreshes its token.
//
// Refresh tokens rotate strictly, as many SaaS do: each refresh answers a new refresh token and
// the one presented is dead from then on. The first one is given with --refresh-token.
//
// Settings, from the command line or the environment (the command line wins):
//   --host IDP_HOST (127.0.0.1)   --port IDP_PORT (required)
//   --client-id IDP_CLIENT_ID     --client-secret IDP_CLIENT_SECRET
//   --token-lifetime IDP_TOKEN_LIFETIME (seconds, 3600)
//   --refresh-token IDP_REFRESH_TOKEN (none: the refresh grant is refused)
// The issuer it advertises is http://<host>:<port>.

import { parseArgs } from "node:util";
import { Events, OAuth2Server } from "oauth2-mock-server";

/** The settings, from the command line over the environment; exits on a missing one. */
function readSettings() {
  const { values } = parseArgs({
    options: {
      host: { type: "string" },
      port: { type: "string" },
      "client-id": { type: "string" },
      "client-secret": { type: "string" },
      "token-lifetime": { type: "string" },
      "refresh-token": { type: "string" },
    },
  });
  const env = process.env;
  const settings = {
    host: values.host ?? env.IDP_HOST ?? "127.0.0.1",
    port: Number(values.port ?? env.IDP_PORT),
    clientId: values["client-id"] ?? env.IDP_CLIENT_ID,
    clientSecret: values["client-secret"] ?? env.IDP_CLIENT_SECRET,
    tokenLifetime: Number(values["token-lifetime"] ?? env.IDP_TOKEN_LIFETIME ?? 3600),
    refreshToken: values["refresh-token"] ?? env.IDP_REFRESH_TOKEN,
  };
  if (!Number.isInteger(settings.port) || !settings.clientId || !settings.clientSecret) {
    console.error("idp: --port, --client-id and --client-secret are required");
    process.exit(2);
  }
  if (!Number.isInteger(settings.tokenLifetime) || settings.tokenLifetime < 1) {
    console.error("idp: --token-lifetime must be a whole number of seconds, at least 1");
    process.exit(2);
  }
  return settings;
}

/** The (id, secret) a token request presents: HTTP Basic first, else the form body. */
function presentedClient(req) {
  const [scheme, encoded] = (req.headers.authorization ?? "").split(" ", 2);
  if (scheme?.toLowerCase() === "basic" && encoded) {
    const decoded = Buffer.from(encoded, "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    if (colon < 0) return { id: decoded, secret: undefined };
    // RFC 6749 2.3.1: both parts are form-encoded before Basic encoding
    return { id: formDecode(decoded.slice(0, colon)), secret: formDecode(decoded.slice(colon + 1)) };
  }
  return { id: req.body?.client_id, secret: req.body?.client_secret };
}

/** A form-encoded value decoded, or the value itself when it is not valid form encoding. */
function formDecode(value) {
  try {
    return decodeURIComponent(value.replaceAll("+", " "));
  } catch {
    return value;
  }
}

/** The bearer token of a request, or undefined. */
function bearerToken(req) {
  const [scheme, token] = (req.headers.authorization ?? "").split(" ", 2);
  return scheme?.toLowerCase() === "bearer" && token ? token : undefined;
}

/** The tokens issued and not yet expired, the live refresh token, and the counts /stats
 * reports. */
class Ledger {
  constructor(lifetimeSeconds, refreshToken) {
    this.lifetimeMs = lifetimeSeconds * 1000;
    this.expiries = new Map();
    this.refreshToken = refreshToken;
    this.stats = { tokens: 0, token_requests: 0, refused: 0, refreshes: 0 };
  }

  /** Whether a refresh grant presents the live refresh token; if so, it is used up and
   * newToken is the live one from now on. */
  rotate(presented, newToken) {
    if (this.refreshToken === undefined || presented !== this.refreshToken) return false;
    this.refreshToken = newToken;
    this.stats.refreshes += 1;
    return true;
  }

  /** Remembers a newly issued token (and forgets the expired ones). */
  issue(token) {
    const now = Date.now();
    for (const [known, expiry] of this.expiries) {
      if (expiry <= now) this.expiries.delete(known);
    }
    this.expiries.set(token, now + this.lifetimeMs);
    this.stats.tokens += 1;
  }

  /** Whether the token was issued here and has not expired. */
  isValid(token) {
    const expiry = token === undefined ? undefined : this.expiries.get(token);
    return expiry !== undefined && Date.now() < expiry;
  }
}

/** Sets a hook's answer to an OAuth2 error. */
function refuse(response, statusCode, error, description) {
  response.statusCode = statusCode;
  response.body = { error, error_description: description };
}

const GRANTS = new Set(["client_credentials", "refresh_token"]);

/** Makes the token endpoint strict: one client, two grants, tokens with the set lifetime. */
function guardTokens(service, settings, ledger) {
  service.on(Events.BeforeTokenSigning, (token) => {
    token.payload.exp = token.payload.iat + settings.tokenLifetime;
    token.payload.sub = settings.clientId;
    token.payload.client_id = settings.clientId;
  });
  service.on(Events.BeforeResponse, (response, req) => {
    ledger.stats.token_requests += 1;
    const client = presentedClient(req);
    if (client.id !== settings.clientId || client.secret !== settings.clientSecret) {
      ledger.stats.refused += 1;
      refuse(response, 401, "invalid_client", "unknown client or wrong secret");
    } else if (!GRANTS.has(req.body?.grant_type)) {
      ledger.stats.refused += 1;
      refuse(response, 400, "unsupported_grant_type", "only client_credentials and refresh_token");
    } else if (
      req.body.grant_type === "refresh_token" &&
      !ledger.rotate(req.body.refresh_token, response.body.refresh_token)
    ) {
      ledger.stats.refused += 1;
      refuse(response, 400, "invalid_grant", "unknown or used refresh token");
    } else {
      response.body.expires_in = settings.tokenLifetime;
      delete response.body.id_token;
      ledger.issue(response.body.access_token);
    }
  });
}

/** Makes /userinfo answer only for live tokens issued here, with the client as subject. */
function guardUserinfo(service, settings, ledger) {
  service.on(Events.BeforeUserinfo, (response, req) => {
    if (ledger.isValid(bearerToken(req))) {
      response.body = { sub: settings.clientId };
    } else {
      refuse(response, 401, "invalid_token", "unknown or expired token");
    }
  });
}

/** Serves GET /stats: how many token requests came, were refused, and gave a token. */
function serveStats(service, ledger) {
  service.addRoute("GET", "/stats", (_req, res) => {
    const body = JSON.stringify(ledger.stats);
    res.writeHead(200, { "Content-Type": "application/json" });
    res.end(body);
  });
}

async function main() {
  const settings = readSettings();
  const server = new OAuth2Server();
  await server.issuer.keys.generate("RS256");
  server.issuer.url = `http://${settings.host}:${settings.port}`;
  const ledger = new Ledger(settings.tokenLifetime, settings.refreshToken);
  guardTokens(server.service, settings, ledger);
  guardUserinfo(server.service, settings, ledger);
  serveStats(server.service, ledger);
  await server.start(settings.port, settings.host);
  console.log(`idp: issuer ${server.issuer.url}, client ${settings.clientId}`);
}

await main();
