import { describe, expect, it } from 'vitest';
import { closestMatch, levenshtein, looksLikeHook, suggestHookName } from '../../src/index.js';

describe('hook name suggestions', () => {
  it.each([
    ['onStartBackup', 'onBackupStart'],
    ['on_backup_start', 'onBackupStart'],
    ['ON-BACKUP-START', 'onBackupStart'],
    ['beforeBackup', 'onBackupStart'],
    ['preBackup', 'onBackupStart'],
    ['onBegin', 'onBackupStart'],
    ['onStart', 'onBackupStart'],
    ['onfile', 'onFile'],
    ['onEachFile', 'onFile'],
    ['onEntry', 'onFile'],
    ['onBackupEnd', 'onBackupStop'],
    ['afterBackup', 'onBackupStop'],
    ['onBackupFinished', 'onBackupStop'],
    ['onBackupStp', 'onBackupStop'],
    ['onServerStarted', 'onServerStart'],
    ['onServerInit', 'onServerStart'],
    ['on_server_start', 'onServerStart'],
    ['onFil', 'onFile'],
  ])('%s → %s', (input, expected) => {
    expect(looksLikeHook(input)).toBe(true);
    expect(suggestHookName(input)).toBe(expected);
  });

  it('ordinary exports are not hook-like', () => {
    for (const k of ['helper', 'version', 'description', 'config', 'name']) expect(looksLikeHook(k), k).toBe(false);
  });

  it('gives no suggestion for far-off hook-like names', () => {
    expect(suggestHookName('onWhatever')).toBeUndefined();
  });

  it('levenshtein and closestMatch', () => {
    expect(levenshtein('kitten', 'sitting')).toBe(3);
    expect(levenshtein('', 'abc')).toBe(3);
    expect(closestMatch('pluigns', ['repository', 'plugins', 'backup'])).toBe('plugins');
    expect(closestMatch('xyzzy', ['repository', 'plugins'])).toBeUndefined();
  });
});
