// The conversation key nginx hashes on to send every turn of one conversation to the same
// clinvoker instance (njs, `js_set $clinvoker_conversation conversation.key`).
//
// The official SDKs send no session id, but every turn of a conversation resends the whole
// history, so what every turn repeats identifies it: the client's key, the system prompt and the
// first user message. A client that does send `x-clinvoker-session` is hashed on that instead.
// Requests that are not a conversation (GET routes, bodies that are not JSON) get an empty key:
// nginx then balances them round robin.
//
// The key is a SHA-256 digest, so neither the client key nor the prompts reach nginx's memory
// of hash points or any log that prints the variable.

import crypto from 'crypto';

// The request body as text, or null when nginx spooled it to a temporary file: that file is
// unlinked as soon as it is opened, so njs cannot read it. The configuration keeps every body in
// memory (`client_body_buffer_size` = `client_max_body_size`) so this does not happen.
function bodyText(r) {
    try {
        return r.requestText || '';
    } catch (e) {
        r.warn('clinvoker: the body was spooled to a file, so this request is balanced round robin; '
            + 'raise client_body_buffer_size to client_max_body_size (' + e.message + ')');
        return null;
    }
}

// The key a client presented: `x-api-key`, or the credentials of `Authorization`.
function clientKey(r) {
    const apiKey = r.headersIn['x-api-key'];
    if (apiKey) {
        return apiKey;
    }
    const auth = r.headersIn['Authorization'] || '';
    const space = auth.indexOf(' ');
    return space < 0 ? auth : auth.slice(space + 1).trim();
}

// One canonical text for message content: a string and a list of blocks with the same text give
// the same result; a non-text block (an image) counts with its own JSON, minus cache hints.
function canonical(content) {
    if (content === undefined || content === null) {
        return '';
    }
    if (typeof content === 'string') {
        return 'text:' + content;
    }
    if (!Array.isArray(content)) {
        return JSON.stringify(content);
    }
    return content.map(function (block) {
        if (typeof block === 'string') {
            return 'text:' + block;
        }
        if (block && block.type === 'text') {
            return 'text:' + block.text;
        }
        const copy = Object.assign({}, block);
        delete copy.cache_control;
        return JSON.stringify(copy);
    }).join('\n');
}

// (system prompt, first user message) of an Anthropic or OpenAI chat request body; the OpenAI
// dialect carries its system prompt as leading `system`/`developer` messages.
function conversationParts(request) {
    let system = canonical(request.system);
    let first = null;
    const messages = Array.isArray(request.messages) ? request.messages : [];
    for (let i = 0; i < messages.length && first === null; i++) {
        const m = messages[i] || {};
        if (m.role === 'system' || m.role === 'developer') {
            system += '\n' + canonical(m.content);
        } else if (m.role === 'user') {
            first = canonical(m.content);
        }
    }
    if (first === null && typeof request.prompt === 'string') {
        // The native API: single-turn, but keyed the same way for a stable spread.
        first = canonical(request.prompt);
        system = canonical(request.system_prompt);
    }
    return first === null ? null : [system, first];
}

function digest(parts) {
    const hash = crypto.createHash('sha256');
    parts.forEach(function (part) {
        hash.update(String(part.length)).update(':').update(part);
    });
    return hash.digest('hex');
}

function key(r) {
    const session = r.headersIn['x-clinvoker-session'];
    if (session) {
        return digest(['session', clientKey(r), session]);
    }
    if (r.method !== 'POST') {
        return '';
    }
    const text = bodyText(r);
    let request;
    try {
        request = text ? JSON.parse(text) : null;
    } catch (e) {
        return '';
    }
    const parts = request && typeof request === 'object' ? conversationParts(request) : null;
    return parts === null ? '' : digest(['conversation', clientKey(r)].concat(parts));
}

export default { key };
