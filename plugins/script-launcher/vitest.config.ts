import { kiwiProject } from '../../vitest.shared';

export default kiwiProject('plugin-script-launcher');
