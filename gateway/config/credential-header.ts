/**
 * Header names whose values are credentials: `Authorization`, `Proxy-Authorization`, cookies, and
 * any name holding token, secret, key, password, auth, credential or session (`X-Api-Key`,
 * `X-Auth-Token`, `X-Client-Secret`). Test lowercase names.
 */
export const CREDENTIAL_HEADER = /token|secret|key|passw|auth|cookie|credential|session/;
