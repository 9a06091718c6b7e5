import { kiwiProject } from '../../vitest.shared.ts';

export default kiwiProject('plugin-notify');
