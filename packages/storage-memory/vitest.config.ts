import { kiwiProject } from '../../vitest.shared';

export default kiwiProject('storage-memory');
