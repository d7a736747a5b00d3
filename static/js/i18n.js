// UI text in Japanese and English, chosen from the browser's language, with a switch.
const TEXT = {
  ja: {
    title: "観光ガイド チャット",
    subtitle: "Azure OpenAI の回答をストリーミングで表示します",
    demo: "デモモード: 本物のモデルではなく、組み込みのデモ応答を表示しています。",
    label: "質問",
    placeholder: "例: 滋賀県について教えてください。（Enter で送信、Shift+Enter で改行）",
    send: "送信",
    stop: "停止",
    newChat: "新しい会話",
    language: "言語",
    transcript: "会話",
    ask: "質問する",
    you: "あなた",
    assistant: "ガイド",
    thinking: "回答を待っています…",
    reasoningLive: "考えています…",
    reasoning: "思考の要約",
    searching: "ウェブを検索しています…",
    refusal: "回答を断りました：",
    source: "出典 {number}: {title}",
    stopped: "停止しました。",
    cut: "接続が途中で切れました。回答は完全ではありません。",
    stalled: "サーバーが回答を引き継げませんでした。回答は完全ではありません。",
    reconnecting: "接続が切れました。再接続しています…",
    incomplete: "回答は途中で打ち切られました（理由: {reason}）。",
    retry: "再試行",
    retryIn: "再試行（あと {seconds} 秒）",
    failed: "エラー: {message}（{code}）",
    network: "サーバーに接続できませんでした。",
    badData: "サーバーから読み取れないデータ（JSON ではないイベント）が届きました。回答は完全ではありません。",
    trimmed: "会話が長いため、古いやり取り {count} 件を省いて質問しました。",
    ttft: "最初の文字まで {ms} ms",
    rate: "{rate} トークン/秒",
    usage: "トークン: 入力 {input} / 出力 {output} / 合計 {total}",
    trace: "トレース ID: {id}",
    keyTitle: "関数キーが必要です",
    keyHelp: "この API は関数キーを必要とします。キーはこのタブを閉じるまでのみ保存されます。",
    keyLabel: "関数キー",
    keySave: "保存して再送信",
    keyCancel: "キャンセル",
    signIn: "サインイン",
    signOut: "サインアウト（{name}）",
    signInUnavailable: "サインインサービスを利用できません。少し待ってから再試行してください。",
    toolRunning: "{name} を実行しています…",
    toolDone: "{name} を実行しました",
    toolFailed: "{name} がエラーを返しました",
    mcpRunning: "{server} の {name} を呼び出しています…",
    mcpDone: "{server} の {name} を呼び出しました",
    mcpFailed: "{server} の {name} の呼び出しに失敗しました",
    approvalAsk: "{server} の {name} を実行してもよいですか？",
    approve: "承認",
    deny: "拒否",
    approveCall: "承認: {server} の {name}",
    denyCall: "拒否: {server} の {name}",
    approved: "{server} の {name} を承認しました。",
    denied: "{server} の {name} を拒否しました。",
    needsApproval: "続けるには、ツールの実行を承認するか拒否してください。",
    history: "会話の履歴",
    image: "添付された画像",
    close: "閉じる",
    more: "さらに表示",
    untitled: "新しい会話",
    historyEmpty: "保存された会話はまだありません。",
    historyFailed: "会話の一覧を読み込めませんでした（{code}）。",
    rename: "名前を変更",
    renameOf: "名前を変更: {title}",
    delete: "削除",
    deleteOf: "削除: {title}",
    renameTitle: "会話の名前を変更",
    renameLabel: "名前",
    save: "保存",
    cancel: "キャンセル",
    deleteTitle: "会話を削除しますか？",
    deleteAsk: "「{title}」を完全に削除します。元に戻せません。",
    renamed: "名前を「{title}」に変更しました。",
    deleted: "「{title}」を削除しました。",
    conversationGone: "この会話は見つかりませんでした（削除されたか、別のユーザーの会話です）。",
    conversationFailed: "会話を読み込めませんでした: {message}（{code}）",
    attach: "添付",
    attachments: "添付ファイル",
    removeAttachment: "添付を削除: {name}",
    attached: "{name} を添付しました。",
    removed: "{name} を削除しました。",
    attachTooMany: "添付できるのは 1 つの質問に {max} 個までです。",
    attachTooLarge: "{name} は大きすぎます（{max} MB まで）。",
    attachUnsupported: "{name} は添付できません。PNG・JPEG・WebP・GIF の画像と PDF を添付できます。",
    attachUnreadable: "{name} を読み込めませんでした。壊れているか、種類が違うファイルです。",
    answerActions: "回答の操作",
    regenerate: "再生成",
    copy: "コピー",
    copied: "回答をコピーしました。",
    copyFailed: "コピーできませんでした。",
    helpful: "役に立った",
    notHelpful: "役に立たなかった",
    feedbackComment: "コメント（任意、{max} 文字まで）",
    feedbackSend: "フィードバックを送信",
    feedbackCancel: "キャンセル",
    feedbackThanks: "フィードバックを送信しました。ありがとうございます。",
    feedbackFailed: "フィードバックを送信できませんでした（{code}）。",
  },
  en: {
    title: "Tour guide chat",
    subtitle: "Streams Azure OpenAI answers as they are generated",
    demo: "Demo mode: answers come from the built-in demo, not a real model.",
    label: "Question",
    placeholder: "e.g. Tell me about Kyoto. (Enter sends, Shift+Enter adds a line)",
    send: "Send",
    stop: "Stop",
    newChat: "New conversation",
    language: "Language",
    transcript: "Conversation",
    ask: "Ask",
    you: "You",
    assistant: "Guide",
    thinking: "Waiting for the answer…",
    reasoningLive: "Thinking…",
    reasoning: "Reasoning summary",
    searching: "Searching the web…",
    refusal: "The model declined:",
    source: "Source {number}: {title}",
    stopped: "Stopped.",
    cut: "The connection was cut; the answer is not complete.",
    stalled: "The server could not carry the answer on; the answer is not complete.",
    reconnecting: "The connection was cut. Reconnecting…",
    incomplete: "The answer was cut short (reason: {reason}).",
    retry: "Retry",
    retryIn: "Retry (in {seconds} s)",
    failed: "Error: {message} ({code})",
    network: "Could not reach the server.",
    badData: "The server sent data the page cannot read (an event that is not JSON); the answer is not complete.",
    trimmed: "The conversation is long: the oldest {count} exchanges were left out of this question.",
    ttft: "first token after {ms} ms",
    rate: "{rate} tokens/s",
    usage: "tokens: {input} in / {output} out / {total} total",
    trace: "trace id: {id}",
    keyTitle: "A function key is needed",
    keyHelp: "This API needs a function key. It is kept only until you close this tab.",
    keyLabel: "Function key",
    keySave: "Save and resend",
    keyCancel: "Cancel",
    signIn: "Sign in",
    signOut: "Sign out ({name})",
    signInUnavailable: "The sign-in service is unavailable; try again in a moment.",
    toolRunning: "Running {name}…",
    toolDone: "Ran {name}",
    toolFailed: "{name} returned an error",
    mcpRunning: "Calling {name} on {server}…",
    mcpDone: "Called {name} on {server}",
    mcpFailed: "Calling {name} on {server} failed",
    approvalAsk: "May the model run {name} on {server}?",
    approve: "Approve",
    deny: "Deny",
    approveCall: "Approve: {name} on {server}",
    denyCall: "Deny: {name} on {server}",
    approved: "You approved {name} on {server}.",
    denied: "You denied {name} on {server}.",
    needsApproval: "To go on, approve or deny the tool call.",
    history: "Conversations",
    image: "Attached image",
    close: "Close",
    more: "Show more",
    untitled: "New conversation",
    historyEmpty: "No saved conversations yet.",
    historyFailed: "The conversations could not be loaded ({code}).",
    rename: "Rename",
    renameOf: "Rename: {title}",
    delete: "Delete",
    deleteOf: "Delete: {title}",
    renameTitle: "Rename the conversation",
    renameLabel: "Title",
    save: "Save",
    cancel: "Cancel",
    deleteTitle: "Delete the conversation?",
    deleteAsk: "“{title}” will be deleted for good. This cannot be undone.",
    renamed: "Renamed to “{title}”.",
    deleted: "Deleted “{title}”.",
    conversationGone: "This conversation was not found (it was deleted, or it is another user's).",
    conversationFailed: "The conversation could not be loaded: {message} ({code})",
    attach: "Attach",
    attachments: "Attachments",
    removeAttachment: "Remove attachment: {name}",
    attached: "Attached {name}.",
    removed: "Removed {name}.",
    attachTooMany: "A question can have at most {max} attachments.",
    attachTooLarge: "{name} is too large (at most {max} MB).",
    attachUnsupported: "{name} cannot be attached: PNG, JPEG, WebP and GIF images and PDFs can.",
    attachUnreadable: "{name} could not be read: it is damaged, or not the kind of file it says.",
    answerActions: "Answer actions",
    regenerate: "Regenerate",
    copy: "Copy",
    copied: "Copied the answer.",
    copyFailed: "Could not copy.",
    helpful: "Helpful",
    notHelpful: "Not helpful",
    feedbackComment: "Comment (optional, at most {max} characters)",
    feedbackSend: "Send feedback",
    feedbackCancel: "Cancel",
    feedbackThanks: "Thank you: your feedback was sent.",
    feedbackFailed: "Your feedback could not be sent ({code}).",
  },
};

export const LANGUAGES = Object.keys(TEXT);
let current = "en";

export function chooseLanguage(saved, browserLanguages) {
  if (LANGUAGES.includes(saved)) return saved;
  const preferred = (browserLanguages ?? []).map((tag) => tag.toLowerCase().split("-")[0]);
  return preferred.find((tag) => LANGUAGES.includes(tag)) ?? "en";
}

export function setLanguage(language) {
  current = LANGUAGES.includes(language) ? language : "en";
  return current;
}

/** The text for `key`, with {name} placeholders filled from `values`. */
export function t(key, values = {}) {
  const template = TEXT[current][key] ?? TEXT.en[key] ?? key;
  return template.replace(/\{(\w+)\}/g, (_, name) => String(values[name] ?? ""));
}

/** Set `element`'s text to `key`'s (with `values`), kept so a language switch redoes it; a null key empties it. */
export function localize(element, key, values = {}) {
  if (key === null) {
    delete element.dataset.i18n;
    delete element.dataset.i18nValues;
    element.textContent = "";
    return;
  }
  element.dataset.i18n = key;
  element.dataset.i18nValues = JSON.stringify(values);
  element.textContent = t(key, values);
}

/** The same for `element`'s aria-label. */
export function localizeLabel(element, key, values = {}) {
  element.dataset.i18nLabel = key;
  element.dataset.i18nLabelValues = JSON.stringify(values);
  element.setAttribute("aria-label", t(key, values));
}

const valuesOf = (json) => (json ? JSON.parse(json) : {});

/** Fill every [data-i18n] element's text, [data-i18n-label] aria-label and [data-i18n-placeholder] placeholder. */
export function translatePage(root) {
  root.documentElement.lang = current;
  for (const element of root.querySelectorAll("[data-i18n]")) {
    element.textContent = t(element.dataset.i18n, valuesOf(element.dataset.i18nValues));
  }
  for (const element of root.querySelectorAll("[data-i18n-label]")) {
    element.setAttribute("aria-label", t(element.dataset.i18nLabel, valuesOf(element.dataset.i18nLabelValues)));
  }
  for (const element of root.querySelectorAll("[data-i18n-placeholder]")) {
    element.placeholder = t(element.dataset.i18nPlaceholder);
  }
}
