import { kiwiCommand } from '../command.js';

export default kiwiCommand({
  meta: { name: 'init', description: 'Create a new repository' },
  args: {},
  async run({ session }) {
    const repo = await session.initRepository();
    session.out.print(`created repository ${repo.id} at ${session.printableRepo()}`);
    session.out.emit('summary', { action: 'init', repository_id: repo.id, location: session.printableRepo() });
  },
});
