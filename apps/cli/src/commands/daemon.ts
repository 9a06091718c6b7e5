import { kiwiCommand } from '../command.js';
import { stringArg } from '../args.js';
import { parseListen } from '../daemon/http.js';
import { runDaemon } from '../daemon/start.js';

export default kiwiCommand({
  meta: {
    name: 'daemon',
    description: 'Run the config\'s jobs on their schedules, in the foreground, with a token-protected status API and page',
  },
  interruptible: true,
  args: {
    listen: { type: 'string', description: 'Address of the API and page, host:port (default 127.0.0.1:8484; another address only when given)' },
  },
  async run({ args, session, stop }) {
    return runDaemon({ session, stop: stop!, listen: parseListen(stringArg(args.listen)), verbose: Boolean(args.verbose) });
  },
});
