import { kiwiProject } from '../../vitest.shared';

export default kiwiProject('test-servers');
