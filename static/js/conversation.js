// The conversation: finished exchanges go back to the server as the `input` list.
export class Conversation {
  constructor() {
    this.turns = [];
  }

  /** The `input` for a new question: every earlier exchange, then the question. */
  inputFor(question) {
    return [...this.turns, { role: "user", content: question }];
  }

  /** Keep an exchange whose answer ended with a terminal event. */
  remember(question, answer) {
    this.turns.push({ role: "user", content: question }, { role: "assistant", content: answer });
  }

  clear() {
    this.turns = [];
  }
}
