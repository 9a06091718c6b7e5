export * from './require.js';
export * from './s3.js';
export * from './sshd.js';
export * from './mariadb.js';
export * from './tcp-proxy.js';
