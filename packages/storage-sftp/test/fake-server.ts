/**
 * An SSH server in the test process (ssh2's Server), for what OpenSSH's sshd will not do: answer
 * SFTP requests the way a broken or hostile server would, or never answer the SFTP channel at all.
 * Password authentication (`PASSWORD`); the host key is pinned by fingerprint in {@link fakeOptions}.
 */
import type { AddressInfo, Socket } from 'node:net';
import ssh2 from 'ssh2';
import type { Connection, ServerChannel, SFTPWrapper } from 'ssh2';
import { fingerprintOf } from '../src/index.js';
import type { SftpStorageOptions } from '../src/index.js';

export const PASSWORD = 'fake-server-password';
export const { STATUS_CODE } = ssh2.utils.sftp;

export interface FakeServer {
  readonly port: number;
  readonly fingerprint: string;
  /** Client connections the server accepted that are still open. */
  readonly openConnections: number;
  stop(): Promise<void>;
}

export interface FakeServerHandlers {
  /** Serve the SFTP session (register request handlers on it); `client` is its SSH connection. */
  sftp?: (sftp: SFTPWrapper, client: Connection) => void;
  /** Accept the `sftp` subsystem as a raw channel and never answer it (a forced command that ignores it). */
  silentSftp?: boolean;
  /** Refuse the `sftp` subsystem (a server without one). */
  noSftp?: boolean;
}

export async function startFakeServer(handlers: FakeServerHandlers): Promise<FakeServer> {
  const { private: hostKey, public: hostPublic } = ssh2.utils.generateKeyPairSync('ed25519');
  const parsed = ssh2.utils.parseKey(hostPublic);
  if (parsed instanceof Error) throw parsed;
  const fingerprint = fingerprintOf((Array.isArray(parsed) ? parsed[0] : parsed).getPublicSSH());
  const clients = new Set<Connection>();
  const held: ServerChannel[] = [];
  const server = new ssh2.Server({ hostKeys: [hostKey] }, (client) => {
    clients.add(client);
    client.on('close', () => clients.delete(client));
    client.on('error', () => undefined);
    client.on('authentication', (ctx) => {
      if (ctx.method === 'password' && ctx.password === PASSWORD) ctx.accept();
      else ctx.reject(['password']);
    });
    client.on('session', (accept) => {
      const session = accept();
      if (handlers.noSftp) {
        session.on('subsystem', (_accept, reject) => reject());
      } else if (handlers.silentSftp) {
        session.on('subsystem', (acceptSub) => {
          held.push(acceptSub()); // never written to
        });
      } else {
        session.on('sftp', (acceptSftp) => handlers.sftp?.(acceptSftp(), client));
      }
    });
  });
  // As the client does: without it, every small reply waits for a delayed ACK (~40 ms).
  server.on('connection', (socket: Socket) => socket.setNoDelay(true));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    fingerprint,
    get openConnections() {
      return clients.size;
    },
    async stop() {
      for (const c of clients) c.end();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Storage options for `server`: password login, host key pinned, nothing read from ~/.ssh. */
export function fakeOptions(server: FakeServer, extra: Partial<SftpStorageOptions> = {}): SftpStorageOptions {
  return {
    host: '127.0.0.1',
    port: server.port,
    username: 'kiwi',
    password: PASSWORD,
    privateKey: [],
    agent: false,
    sshConfigFile: false,
    hostKeyFingerprint: server.fingerprint,
    path: '/repo',
    env: {},
    ...extra,
  };
}

/** A directory entry as an SFTP server sends it: a regular file of `size` bytes. */
export function fileEntry(filename: string, size = 10) {
  return { filename, longname: `-rw------- 1 kiwi kiwi ${size} Jan 1 00:00 ${filename}`, attrs: { mode: 0o100600, uid: 1000, gid: 1000, size, atime: 0, mtime: 0 } };
}
