/** Words and runs that make up guessable tokens; what is left of a token without them must still be long. */
const COMMON = [
  'administrator', 'password', 'changeme', 'registry', 'welcome', 'default', 'letmein', 'example', 'passwd', 'secret',
  'qwerty', 'mirror', 'master', 'admin', 'token', 'login', 'root', 'test', 'pass', '123456', '1234', 'abc', 'acr',
];
const MIN_DISTINCT = 6;
const MIN_UNCOMMON = 8;

/** Why the token is easy to guess, or null. Meant to catch hand-made tokens, not to grade random ones. */
export function weakTokenReason(token: string): string | null {
  const distinct = new Set(token).size;
  if (distinct === 1) return 'one character repeated';
  for (let unit = 2; unit <= token.length / 2; unit++) {
    if (token.length % unit === 0 && token.slice(0, unit).repeat(token.length / unit) === token) return 'a short pattern repeated';
  }
  if (distinct < MIN_DISTINCT) return 'too few different characters';
  let rest = token.toLowerCase();
  for (const word of COMMON) rest = rest.split(word).join('');
  if (rest.replace(/[^a-z0-9]/g, '').length < MIN_UNCOMMON) return 'common words and digits';
  return null;
}
