import { kiwiCommand } from '../command.js';
import { stringArg } from '../args.js';
import { UsageError } from '../exit-codes.js';

export default kiwiCommand({
  meta: { name: 'init', description: 'Create a new repository' },
  args: {
    'copy-chunker-params': { type: 'boolean', description: 'Take the chunker and blob id key of --from-repo, so `kiwi copy` from it deduplicates without reading what is there' },
    'from-repo': { type: 'string', description: 'The repository whose chunker parameters to take (with --copy-chunker-params)' },
    'from-password-file': { type: 'string', description: 'Password file of --from-repo (default: $KIWI_FROM_PASSWORD, $KIWI_FROM_PASSWORD_FILE)' },
  },
  async run({ args, session }) {
    const fromUrl = stringArg(args['from-repo']);
    if (args['copy-chunker-params'] && !fromUrl) throw new UsageError('--copy-chunker-params needs --from-repo <url>');
    if (fromUrl && !args['copy-chunker-params']) throw new UsageError('--from-repo with init is only used with --copy-chunker-params');
    const from = fromUrl ? await session.openFromRepository(fromUrl, stringArg(args['from-password-file'])) : undefined;
    const repo = await session.initRepository(from ? { sameChunkerAs: from } : {});
    session.out.print(`created repository ${repo.id} at ${session.printableRepo()}${from ? ` (chunker parameters of ${from.location})` : ''}`);
    session.out.info(
      'Remember the password (keep a copy somewhere safe): without it nobody, not even you, can read the backups in this repository. A lost password means lost data.',
    );
    session.out.emit('summary', { action: 'init', repository_id: repo.id, location: session.printableRepo(), ...(from ? { chunker_from: from.location } : {}) });
  },
});
