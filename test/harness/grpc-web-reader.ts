import type { IncomingHttpHeaders } from 'node:http';

/** What a gRPC-Web client reads of an answer: its status and message, or why it refuses the answer. */
export type GrpcWebReading = { readonly status: number; readonly message: string } | { readonly refused: string };

/**
 * Reads an answer to a gRPC-Web call of `requestType` as a browser client does (connect-es,
 * grpc-web; PROTOCOL-WEB.md): the answer's content type must be a gRPC-Web one of the same encoding
 * (`-text` for `-text`) and codec; the status comes from the headers of a Trailers-Only answer (no
 * body), else from the body's trailer frame (flag 0x80, `name: value` lines), which a `-text`
 * answer carries in base64, each piece written maybe padded on its own. `grpc-message` is percent-decoded.
 */
export function readGrpcWebAnswer(requestType: string, headers: IncomingHttpHeaders, body: Buffer): GrpcWebReading {
  const type = String(headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  const shape = /^application\/grpc-web(-text)?(?:\+(\w+))?$/;
  const got = shape.exec(type);
  const asked = shape.exec(requestType.toLowerCase())!;
  if (got === null) return { refused: `unexpected content type ${JSON.stringify(type)}` };
  if ((got[1] ?? '') !== (asked[1] ?? '') || (got[2] ?? 'proto') !== (asked[2] ?? 'proto')) return { refused: `content type ${type} does not answer ${requestType}` };
  if (body.length === 0) {
    if (headers['grpc-status'] === undefined) return { refused: 'no grpc-status in a Trailers-Only answer' };
    return { status: Number(headers['grpc-status']), message: decodeURIComponent(String(headers['grpc-message'] ?? '')) };
  }
  const bytes = got[1] === '-text' ? fromBase64Pieces(body.toString('latin1')) : body;
  for (let offset = 0; offset + 5 <= bytes.length; ) {
    const length = bytes.readUInt32BE(offset + 1);
    if (bytes[offset]! & 0x80) {
      const fields = new Map(bytes.subarray(offset + 5, offset + 5 + length).toString('latin1').split('\r\n').filter(Boolean).map((line) => [line.slice(0, line.indexOf(':')).trim().toLowerCase(), line.slice(line.indexOf(':') + 1).trim()] as const));
      if (!fields.has('grpc-status')) return { refused: 'no grpc-status in the trailer frame' };
      return { status: Number(fields.get('grpc-status')), message: decodeURIComponent(fields.get('grpc-message') ?? '') };
    }
    offset += 5 + length;
  }
  return { refused: 'no trailer frame in the body' };
}

/** Base64 text made of pieces each padded on its own (gRPC-Web text bodies), decoded 4 characters at a time: Node stops at the first `=`. */
function fromBase64Pieces(text: string): Buffer {
  const parts: Buffer[] = [];
  for (let index = 0; index + 4 <= text.length; index += 4) parts.push(Buffer.from(text.slice(index, index + 4), 'base64'));
  return Buffer.concat(parts);
}
