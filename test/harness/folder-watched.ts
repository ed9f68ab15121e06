import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';

/** Whether this process watches `folder` (Linux: a watch of one of its inotify descriptors names the folder's inode). */
export async function watchedByThisProcess(folder: string): Promise<boolean> {
  const inode = `ino:${(await stat(folder)).ino.toString(16)} `;
  for (const fd of await readdir('/proc/self/fdinfo')) {
    const info = await readFile(join('/proc/self/fdinfo', fd), 'utf8').catch(() => '');
    if (info.split('\n').some((line) => line.startsWith('inotify wd:') && line.includes(inode))) return true;
  }
  return false;
}
