// @ag-ui/client's HttpAgent with the relay's resume extension: a run whose stream ends before
// RUN_FINISHED or RUN_ERROR (a cut connection, or the relay's time limit) goes on after the last
// event id it received, exactly once, on any instance (RESUMABLE_STREAMS=true).
import { HttpAgent, runHttpRequest, transformHttpEventStream } from "@ag-ui/client";
import { EMPTY, catchError, concat, defer, tap, throwError } from "rxjs";

export class RelayAgent extends HttpAgent {
  run(input) {
    let lastEventId;
    let resumedAfter;
    let ended = false;
    const read = (url, init) => {
      const decoder = new TextDecoder();
      let buffer = "";
      const noteIds = tap((event) => {
        if (event.type !== "data") return;
        buffer += decoder.decode(event.data, { stream: true });
        const blocks = buffer.split("\n\n");
        buffer = blocks.pop();
        for (const block of blocks) lastEventId = /^id: (.+)$/m.exec(block)?.[1] ?? lastEventId;
      });
      return transformHttpEventStream(runHttpRequest(() => this.fetch(url, init)).pipe(noteIds)).pipe(
        tap((event) => { ended ||= event.type === "RUN_FINISHED" || event.type === "RUN_ERROR"; }),
        catchError((error) => (error instanceof TypeError ? EMPTY : throwError(() => error))), // a cut
      );
    };
    const resume = () => defer(() => {
      if (ended || lastEventId === undefined || lastEventId === resumedAfter) return EMPTY;
      resumedAfter = lastEventId;
      const url = `${this.url}/${encodeURIComponent(input.threadId)}/runs/${encodeURIComponent(input.runId)}`;
      const headers = { ...this.headers, "Last-Event-ID": lastEventId };
      return concat(read(url, { headers, signal: this.abortController.signal }), resume());
    });
    return concat(read(this.url, this.requestInit(input)), resume());
  }
}
