// A response whose connection breaks, as a network drop would, once `count` SSE events that
// `counts(block)` picks have been read by the client: it has them all, and the next read fails
// with TypeError("network error"), as fetch's does; the connection to the server is closed.
export function cutAfter(response, count, counts) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  const encoder = new TextEncoder();
  let buffer = "";
  let seen = 0;
  let cut = false;
  const body = new ReadableStream({
    async pull(controller) {
      if (cut) {
        await reader.cancel();
        controller.error(new TypeError("network error"));
        return;
      }
      const { done, value } = await reader.read();
      if (done) {
        controller.close();
        return;
      }
      buffer += decoder.decode(value, { stream: true });
      const blocks = buffer.split("\n\n");
      buffer = blocks.pop();
      for (const block of blocks) {
        controller.enqueue(encoder.encode(`${block}\n\n`));
        if (counts(block) && ++seen === count) {
          cut = true;
          return;
        }
      }
    },
  });
  return new Response(body, { status: response.status, headers: response.headers });
}
