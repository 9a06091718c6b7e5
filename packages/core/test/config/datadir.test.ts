import { homedir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultConfigPath, defaultKeyFilePath, defaultRepositoryPath, resolveDataDir } from '../../src/index.js';

describe('resolveDataDir', () => {
  it('KIWI_DATA_DIR wins on every platform', () => {
    for (const p of ['linux', 'darwin', 'win32', 'freebsd']) {
      expect(resolveDataDir({ KIWI_DATA_DIR: '/data/kiwi', HOME: '/h', XDG_DATA_HOME: '/x', LOCALAPPDATA: 'C:\\L' }, p)).toBe('/data/kiwi');
    }
  });
  it('Linux: $XDG_DATA_HOME/kiwi, else ~/.local/share/kiwi; relative XDG is ignored', () => {
    expect(resolveDataDir({ HOME: '/home/u', XDG_DATA_HOME: '/xdg' }, 'linux')).toBe('/xdg/kiwi');
    expect(resolveDataDir({ HOME: '/home/u' }, 'linux')).toBe('/home/u/.local/share/kiwi');
    expect(resolveDataDir({ HOME: '/home/u', XDG_DATA_HOME: 'rel' }, 'linux')).toBe('/home/u/.local/share/kiwi');
    expect(resolveDataDir({ HOME: '/home/u', KIWI_DATA_DIR: '' }, 'freebsd')).toBe('/home/u/.local/share/kiwi');
    expect(resolveDataDir({}, 'linux')).toBe(join(homedir(), '.local/share/kiwi'));
  });
  it('macOS: ~/Library/Application Support/Kiwi', () => {
    expect(resolveDataDir({ HOME: '/Users/u', XDG_DATA_HOME: '/xdg' }, 'darwin')).toBe('/Users/u/Library/Application Support/Kiwi');
  });
  it('Windows: %LOCALAPPDATA%\\Kiwi', () => {
    expect(resolveDataDir({ LOCALAPPDATA: 'C:\\Users\\u\\AppData\\Local' }, 'win32')).toBe('C:\\Users\\u\\AppData\\Local\\Kiwi');
    expect(resolveDataDir({ USERPROFILE: 'C:\\Users\\u' }, 'win32')).toBe('C:\\Users\\u\\AppData\\Local\\Kiwi');
  });
  it('defaults inside the data directory', () => {
    expect(defaultRepositoryPath('/d')).toBe(join('/d', 'repository'));
    expect(defaultKeyFilePath('/d')).toBe(join('/d', 'repository.password'));
    expect(defaultConfigPath('/d')).toBe(join('/d', 'config.json'));
  });
});
