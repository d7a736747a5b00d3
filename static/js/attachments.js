// Photos and PDFs for a question, prepared in the browser before they are sent: an image is
// scaled down to at most MAX_SIDE px on its long side and re-encoded (a JPEG always, so its EXIF,
// and with it the GPS position, is dropped; another image when it had to be scaled, or when
// that makes it smaller), a PDF goes as it is. Limits are checked before anything is sent, with
// the server's (GET /api/health) or these defaults; the server checks the bytes again.

/** The long side an image is scaled down to (what vision models look at, at most). */
export const MAX_SIDE = 1568;
export const JPEG_QUALITY = 0.9;
export const IMAGE_TYPES = ["image/png", "image/jpeg", "image/webp", "image/gif"];
export const PDF_TYPE = "application/pdf";
export const ACCEPT = [...IMAGE_TYPES, PDF_TYPE].join(",");
export const DEFAULT_ATTACHMENT_LIMITS = { max_attachments: 4, max_attachment_bytes: 10 * 1024 * 1024 };

/** A problem with a file: an i18n key and its values. */
export class AttachmentProblem extends Error {
  constructor(key, values) {
    super(key);
    this.key = key;
    this.values = values;
  }
}

/** The attachment limits in health's `limits`; max_attachments 0: the server takes none. */
export function attachmentLimits(given) {
  const limits = { ...DEFAULT_ATTACHMENT_LIMITS };
  if (Number.isSafeInteger(given?.max_attachments) && given.max_attachments >= 0) limits.max_attachments = given.max_attachments;
  if (Number.isSafeInteger(given?.max_attachment_bytes) && given.max_attachment_bytes > 0) {
    limits.max_attachment_bytes = given.max_attachment_bytes;
  }
  return limits;
}

/** The problem with adding `adding` files to `count` already attached, or null. */
export function countProblem(count, adding, limits) {
  return count + adding > limits.max_attachments ? new AttachmentProblem("attachTooMany", { max: limits.max_attachments }) : null;
}

/** The kind of a file by its declared type: "image", "pdf", or null when it cannot be attached. */
export function kindOf(type) {
  if (IMAGE_TYPES.includes(type)) return "image";
  return type === PDF_TYPE ? "pdf" : null;
}

/** The size {width, height} an image of `width`×`height` is scaled to: at most `maxSide` on its long side. */
export function scaledSize(width, height, maxSide = MAX_SIDE) {
  const scale = Math.min(1, maxSide / Math.max(width, height));
  return { width: Math.max(1, Math.round(width * scale)), height: Math.max(1, Math.round(height * scale)) };
}

/**
 * `file` ready to send: {name, kind, mediaType, dataUrl, bytes, width?, height?}; rejects with an
 * AttachmentProblem for a file of a kind not taken, unreadable, or over the size limit.
 */
export async function prepare(file, limits) {
  const name = file.name || "image";
  const kind = kindOf(file.type);
  if (kind === null) throw new AttachmentProblem("attachUnsupported", { name });
  const blob = kind === "image" ? await prepareImage(file, name) : file;
  if (kind === "pdf" && (await headOf(file, 5)) !== "%PDF-") throw new AttachmentProblem("attachUnreadable", { name });
  if (blob.size > limits.max_attachment_bytes) {
    throw new AttachmentProblem("attachTooLarge", { name, max: megabytes(limits.max_attachment_bytes) });
  }
  const prepared = { name, kind, mediaType: blob.type, dataUrl: await dataUrlOf(blob), bytes: blob.size };
  return kind === "image" ? { ...prepared, width: blob.width, height: blob.height } : prepared;
}

/** The image scaled and re-encoded as the module says; a Blob with its `width` and `height`. */
async function prepareImage(file, name) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(file, { imageOrientation: "from-image" }); // upright, as EXIF said
  } catch {
    throw new AttachmentProblem("attachUnreadable", { name });
  }
  const size = scaledSize(bitmap.width, bitmap.height);
  const scaled = size.width !== bitmap.width || size.height !== bitmap.height;
  const canvas = new OffscreenCanvas(size.width, size.height);
  canvas.getContext("2d").drawImage(bitmap, 0, 0, size.width, size.height);
  bitmap.close();
  // A canvas writes PNG, JPEG and WebP; a GIF becomes a PNG (its first frame).
  const type = file.type === "image/gif" ? "image/png" : file.type;
  const encoded = await canvas.convertToBlob({ type, quality: JPEG_QUALITY });
  const keep = scaled || file.type === "image/jpeg" || encoded.size < file.size ? encoded : file;
  return Object.assign(keep, size);
}

async function headOf(file, count) {
  return new TextDecoder("latin1").decode(await file.slice(0, count).arrayBuffer());
}

function dataUrlOf(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });
}

function megabytes(bytes) {
  return Math.round((bytes / (1024 * 1024)) * 10) / 10;
}

/** The content parts of a question: its text (if any), then each attachment. */
export function contentParts(text, attachments) {
  const parts = text ? [{ type: "input_text", text }] : [];
  for (const attachment of attachments) {
    if (attachment.kind === "image") parts.push({ type: "input_image", image_url: attachment.dataUrl, detail: "auto" });
    else parts.push({ type: "input_file", filename: attachment.name, file_data: attachment.dataUrl });
  }
  return parts;
}
