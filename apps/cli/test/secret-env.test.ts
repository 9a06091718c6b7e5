/**
 * Every environment variable of Kiwi's that holds a secret is on core's `SECRET_ENV_VARS`, the list the
 * plug-ins withhold from the programs they start (script-launcher's scripts, mysql-state's commands and
 * dump tool): a variable added to `kiwi help environment` without being added there fails here.
 */
import { describe, expect, it } from 'vitest';
import { SECRET_ENV_VARS } from '@kiwi-backup/core';
import { ENVIRONMENT } from '../src/help/topics.js';

describe('secret environment variables', () => {
  it('every documented variable that holds a password, passphrase, secret key, token or password command is withheld', () => {
    const names = ENVIRONMENT.flatMap(([name]) => name.split(/,\s*/));
    const secret = names.filter((n) => /PASSWORD|PASSPHRASE|SECRET|TOKEN|ACCESS_KEY/.test(n) && !n.endsWith('_FILE'));
    expect(secret.length).toBeGreaterThan(5);
    for (const name of secret) expect(SECRET_ENV_VARS, name).toContain(name);
    // The one the CLI reads for `copy`/`init --from-repo` without listing it in the help's table.
    expect(SECRET_ENV_VARS).toContain('KIWI_FROM_PASSWORD');
    // Paths are not secrets: a script may pass them on to a `kiwi` it runs.
    for (const name of names.filter((n) => n.endsWith('_FILE'))) expect(SECRET_ENV_VARS).not.toContain(name);
  });
});
