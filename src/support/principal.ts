/**
 * Who is calling a support endpoint. In Azure, App Service Authentication (Easy Auth) validates the
 * sign-in and passes the principal in `x-ms-client-principal` (base64 JSON with `claims`); the
 * header cannot be forged from outside because the platform strips it from incoming requests.
 * Locally there is no Easy Auth: a configured development principal (SUPPORT_DEV_PRINCIPAL) acts
 * for requests that carry no header. Unset in Azure, so there the header is required.
 */
export const CLIENT_PRINCIPAL_HEADER = 'x-ms-client-principal';
export const SUPPORT_ROLE = 'support';

export interface SupportPrincipal {
  name: string;
  roles: string[];
  /** How the principal was established. */
  source: 'app-service-auth' | 'development';
}

interface ClientPrincipalClaim {
  typ: string;
  val: string;
}

interface ClientPrincipalPayload {
  auth_typ?: string;
  name_typ?: string;
  role_typ?: string;
  claims?: ClientPrincipalClaim[];
  /** Static Web Apps style (also accepted): `userDetails` and `userRoles`. */
  userDetails?: string;
  userRoles?: string[];
}

const ROLE_CLAIM_TYPES = ['roles', 'role', 'http://schemas.microsoft.com/ws/2008/06/identity/claims/role'];
const NAME_CLAIM_TYPES = [
  'name',
  'preferred_username',
  'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name',
  'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress',
  'email',
  'upn',
];

export type Authorization =
  | { ok: true; principal: SupportPrincipal }
  /**
   * 401: nobody is signed in (or the header is unreadable); 403: signed in without the role.
   * `signIn`: where a browser signs in, when App Service Authentication is there to sign it in.
   */
  | { ok: false; status: 401 | 403; detail: string; signIn?: string };

/** App Service Authentication's sign-in with the Entra ID provider, the one `infra/` configures. */
export const SIGN_IN_PATH = '/.auth/login/aad';

/** Reads an `x-ms-client-principal` header value; undefined when it is not a principal. */
export function parseClientPrincipal(header: string): SupportPrincipal | undefined {
  let payload: ClientPrincipalPayload;
  try {
    payload = JSON.parse(Buffer.from(header, 'base64').toString('utf8')) as ClientPrincipalPayload;
  } catch {
    return undefined;
  }
  if (!payload || typeof payload !== 'object') return undefined;
  const claims = Array.isArray(payload.claims) ? payload.claims.filter((c) => c && typeof c.typ === 'string' && typeof c.val === 'string') : [];
  const roleTypes = [payload.role_typ, ...ROLE_CLAIM_TYPES].filter((t): t is string => typeof t === 'string');
  const nameTypes = [payload.name_typ, ...NAME_CLAIM_TYPES].filter((t): t is string => typeof t === 'string');
  const roles = [
    ...claims.filter((c) => roleTypes.includes(c.typ)).map((c) => c.val),
    ...(Array.isArray(payload.userRoles) ? payload.userRoles.filter((r) => typeof r === 'string') : []),
  ];
  const name =
    nameTypes.map((t) => claims.find((c) => c.typ === t)?.val).find((v) => typeof v === 'string' && v.length > 0) ??
    (typeof payload.userDetails === 'string' ? payload.userDetails : undefined);
  if (!name) return undefined;
  return { name, roles: [...new Set(roles)], source: 'app-service-auth' };
}

/**
 * The support principal of a request, or why there is none.
 *
 * The header is believed only where something vouches for it: App Service Authentication, which
 * strips any incoming `x-ms-client-principal` and sets `WEBSITE_AUTH_ENABLED=True`, or a local run
 * with a development principal (where anyone is support anyway). Without either, a caller could
 * forge the header, so it is ignored and the request is unauthenticated.
 * @param header value of `x-ms-client-principal`, if any
 * @param developmentPrincipal SUPPORT_DEV_PRINCIPAL, set only for local runs
 * @param appServiceAuthEnabled WEBSITE_AUTH_ENABLED is `True` (set by the platform)
 */
export function authorizeSupport(
  header: string | null | undefined,
  developmentPrincipal: string | undefined,
  appServiceAuthEnabled = false,
): Authorization {
  const dev = developmentPrincipal?.trim();
  if (header && (appServiceAuthEnabled || dev)) {
    const principal = parseClientPrincipal(header);
    if (!principal) return { ok: false, status: 401, detail: `${CLIENT_PRINCIPAL_HEADER} is not a readable client principal` };
    if (!principal.roles.includes(SUPPORT_ROLE)) {
      return { ok: false, status: 403, detail: `${principal.name} does not have the '${SUPPORT_ROLE}' role` };
    }
    return { ok: true, principal };
  }
  if (dev) return { ok: true, principal: { name: dev, roles: [SUPPORT_ROLE], source: 'development' } };
  if (!appServiceAuthEnabled) {
    return { ok: false, status: 401, detail: 'support actions need App Service Authentication, which is not enabled for this app' };
  }
  return { ok: false, status: 401, detail: 'sign in with an account that has the support role', signIn: SIGN_IN_PATH };
}

/** What decides who may call the support routes, read once from the app's settings. */
export interface SupportAccess {
  /** SUPPORT_DEV_PRINCIPAL: set for local runs only. */
  developmentPrincipal?: string;
  /** WEBSITE_AUTH_ENABLED=True: App Service Authentication vouches for `x-ms-client-principal`. */
  appServiceAuthEnabled?: boolean;
}

/**
 * The app's settings as the support routes read them. A development principal makes every caller
 * support, so it is ignored on App Service (which sets `WEBSITE_INSTANCE_ID` on every instance):
 * copied there with the rest of local.settings.json (`func azure functionapp publish
 * --publish-local-settings` does that), it would open the support routes to the internet.
 */
export function supportAccessFromEnvironment(env: NodeJS.ProcessEnv = process.env): SupportAccess {
  return {
    developmentPrincipal: env.WEBSITE_INSTANCE_ID ? undefined : env.SUPPORT_DEV_PRINCIPAL,
    appServiceAuthEnabled: env.WEBSITE_AUTH_ENABLED?.toLowerCase() === 'true',
  };
}

let appAccess: SupportAccess | undefined;

/** The app's own `SupportAccess`, read from its settings once per process (the triggers' one). */
export function appSupportAccess(): SupportAccess {
  return (appAccess ??= supportAccessFromEnvironment());
}

/** Builds a header value, for clients and tests that stand in for App Service Authentication. */
export function encodeClientPrincipal(name: string, roles: string[]): string {
  const payload: ClientPrincipalPayload = {
    auth_typ: 'aad',
    name_typ: 'name',
    role_typ: 'roles',
    claims: [{ typ: 'name', val: name }, ...roles.map((r) => ({ typ: 'roles', val: r }))],
  };
  return Buffer.from(JSON.stringify(payload), 'utf8').toString('base64');
}
