import { kiwiProject } from '../../vitest.shared.ts';

export default kiwiProject('native-fs');
