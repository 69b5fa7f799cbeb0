/* ge-clip-tokenizer.h: the CLIP byte-level BPE tokenizer, as transformers'
 * slow CLIPTokenizer runs it when ftfy is not installed.
 *
 * The text is encoded in these steps (tests/fixtures/diffusers/
 * clip_tokenizer_small/README.md has the python behind each):
 *  1. The raw text is split on the added and special tokens (bos, eos, unk,
 *     pad, additional_special_tokens and tokenizer_config.json's
 *     added_tokens_decoder), leftmost-longest; each match becomes its id.
 *     A pad token such as SD2's "!" is one of them, so with such a
 *     tokenizer a literal "!" is the pad id, exactly as in transformers.
 *  2. Each piece in between goes through transformers' BasicTokenizer
 *     (strip_accents=False, no punctuation split): characters of category
 *     C* (but \t \n \r), U+0000 and U+FFFD are dropped, whitespace becomes a
 *     space, CJK ideographs get spaces around them, NFC, split on
 *     whitespace, Python str.lower () per word (full mapping: U+0130 becomes
 *     "i" U+0307, capital sigma becomes final sigma at the end of a word,
 *     Roman numerals and circled letters are lowered), joined by spaces.
 *     No html.unescape and no ftfy.
 *  3. The CLIP regex (IGNORECASE) cuts that into pieces: contractions,
 *     letter runs, single digits, runs of other non-space characters
 *     (U+0345, whose case fold is a letter, matches none and is dropped,
 *     as in python's regex module).
 *  4. Each piece's UTF-8 bytes become bytes_to_unicode symbols, "</w>" is
 *     appended to the last one, and merges.txt's pairs are applied lowest
 *     rank first (all occurrences, left to right) until none applies.
 *  5. [bos] + the first max_length-2 content ids + [eos], padded on the
 *     right with the pad id to max_length (tokenizer_config.json's
 *     model_max_length, 77 when absent).
 *
 * Where this differs from transformers, on purpose or because the data
 * differ:
 *  - Unicode tables: character categories, case mappings and the regex
 *    classes come from GLib's tables, python's from unicodedata and the
 *    regex module.  They agree for every character assigned in both
 *    versions (checked for every code point against Python 3.11 / Unicode
 *    14 and regex 2026.5; a random-text comparison with a re-statement of
 *    the python code gave the same ids); a character assigned only in the
 *    newer Unicode version (python drops those as unassigned, category Cn)
 *    is kept here.
 *  - The BPE of one regex piece takes time quadratic in the piece's length
 *    (as python's does): a single "word" of many kilobytes is slow.
 *  - The load is strict where python is lenient: a merges.txt line that is
 *    not exactly two symbols, a merge whose symbols or result are missing
 *    from vocab.json, or a special token that is neither in vocab.json nor
 *    in added_tokens_decoder is an error (python would silently ignore the
 *    line or hand out the unknown / a new id).
 *  - merges.txt's first line is always skipped, as transformers does
 *    (it reads lines [1, 48895) whether or not line 0 is a "#version"
 *    header); lines past that are ignored here too.
 *  - An added token's single_word / lstrip / rstrip flags are not
 *    implemented; lstrip and rstrip cannot change the result (the
 *    BasicTokenizer drops the whitespace they would strip), single_word is
 *    not used by CLIP tokenizers.
 *  - model_max_length above 1000000 (transformers' "unset" value is 1e30)
 *    counts as absent, i.e. 77.
 *
 * encode () does not modify the tokenizer: one tokenizer may be used from
 * several threads at once.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct _GeClipTokenizer GeClipTokenizer;

/* A transformers tokenizer folder: vocab.json, merges.txt, and optional
 * tokenizer_config.json / special_tokens_map.json / added_tokens.json
 * (pad/bos/eos/unk tokens, added tokens, model_max_length). */
GeClipTokenizer *ge_clip_tokenizer_new (const char *folder, GError ** error);
/* vocab.json and merges.txt alone: the CLIPTokenizer defaults (bos
 * "<|startoftext|>", eos = unk = pad = "<|endoftext|>", max length 77). */
GeClipTokenizer *ge_clip_tokenizer_new_from_files (const char *vocab_json,
    const char *merges_txt, GError ** error);
/* The same from memory; @tokenizer_config_json may be NULL.  Lengths of -1
 * mean NUL-terminated.  Errors name "vocab.json", "merges.txt" and
 * "tokenizer_config.json". */
GeClipTokenizer *ge_clip_tokenizer_new_from_data (const char *vocab_json,
    gssize vocab_len, const char *merges_txt, gssize merges_len,
    const char *tokenizer_config_json, gssize config_len, GError ** error);
void ge_clip_tokenizer_free (GeClipTokenizer * t);

int ge_clip_tokenizer_max_length (const GeClipTokenizer * t);
gint32 ge_clip_tokenizer_bos_id (const GeClipTokenizer * t);
gint32 ge_clip_tokenizer_eos_id (const GeClipTokenizer * t);
gint32 ge_clip_tokenizer_pad_id (const GeClipTokenizer * t);

/* Encodes @text into exactly max_length ids (bos, content, eos, padding) as
 * tokenizer(text, padding="max_length", max_length=max_length,
 * truncation=True) does; *truncated (may be NULL) says whether content was
 * cut (the caller warns once).  Text that is not valid UTF-8 is a
 * GE_ERROR_INVALID. */
gboolean ge_clip_tokenizer_encode (const GeClipTokenizer * t, const char *text,
    gint32 * ids, gboolean * truncated, GError ** error);
/* The same, also filling @attention_mask (max_length entries, may be NULL)
 * with 1 for bos, content and eos and 0 for padding, and *n_untruncated
 * (may be NULL) with the length bos + all content + eos before truncation.
 * Without @n_untruncated the text is only tokenized as far as the kept ids
 * and the truncation flag need. */
gboolean ge_clip_tokenizer_encode_full (const GeClipTokenizer * t,
    const char *text, gint32 * ids, gint32 * attention_mask,
    int *n_untruncated, gboolean * truncated, GError ** error);

G_END_DECLS
