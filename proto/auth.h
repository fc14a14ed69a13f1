/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Mutual authentication: HMAC-SHA256 challenge-response on a shared key.
 *
 *   client -> server  HELLO  AuthHello { client_nonce, name }
 *   server -> client  HELLO reply  AuthChallenge { server_nonce,
 *                     server_proof = HMAC(key, "keel-srv" | cn | sn) }
 *   client verifies server_proof (the server knows the key), then
 *   client -> server  AUTH   AuthProof { client_proof = HMAC(key, "keel-cli" | sn | cn) }
 *   server -> client  AUTH reply, status OK or EPERM (then closes).
 *
 * Both nonces are fresh random 32 bytes per connection, so a recorded
 * handshake replayed on a new connection fails: its proof covers an old
 * server nonce. Proofs are compared in constant time.
 */
#ifndef KEEL_PROTO_AUTH_H
#define KEEL_PROTO_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KP_NONCE_LEN 32
#define KP_MAC_LEN 32
#define KP_KEY_MIN 16
#define KP_KEY_MAX 128

struct kp_key {
	uint8_t bytes[KP_KEY_MAX];
	size_t len;
};

enum kp_auth_role {
	KP_AUTH_SERVER, /* proof made by the server */
	KP_AUTH_CLIENT, /* proof made by the client */
};

/*
 * Load a key file: one line of hex (32..256 hex digits), optional trailing
 * newline. The file must be a regular file not accessible by group or others
 * (mode & 077 == 0): -EPERM otherwise. -ENOENT, -EACCES from open; -EINVAL
 * for content that is not such a line. @err receives a readable reason.
 */
int kp_key_load(const char *path, struct kp_key *key, char *err, size_t errlen);

/* Create a new random 32-byte key file with mode 0600 (O_EXCL: -EEXIST if
 * present). */
int kp_key_generate(const char *path);

/* Fill @nonce with KP_NONCE_LEN random bytes. 0 or -EIO. */
int kp_nonce(uint8_t nonce[KP_NONCE_LEN]);

/* Compute the proof made by @role: HMAC over the role label, the nonce of
 * the peer being answered, then its own nonce (see above). */
void kp_auth_proof(const struct kp_key *key, enum kp_auth_role role,
		   const uint8_t client_nonce[KP_NONCE_LEN],
		   const uint8_t server_nonce[KP_NONCE_LEN], uint8_t out[KP_MAC_LEN]);

/* Constant-time check of a received proof (any length accepted; a wrong
 * length is simply false). */
bool kp_auth_verify(const struct kp_key *key, enum kp_auth_role role,
		    const uint8_t client_nonce[KP_NONCE_LEN],
		    const uint8_t server_nonce[KP_NONCE_LEN], const uint8_t *proof,
		    size_t proof_len);

/* ---- REST API tokens (keel-mgmt's token_file; keelctl, keel-client) ---- */

#define KP_TOKEN_MIN	  16
#define KP_TOKEN_MAX	  128
#define KP_TOKENS_MAX	  16
#define KP_TOKEN_FILE_MAX 8192

struct kp_tokens {
	unsigned int n;
	char tok[KP_TOKENS_MAX][KP_TOKEN_MAX + 1]; /* NUL-terminated */
};

/*
 * Load a token file: one token a line, KP_TOKEN_MIN..KP_TOKEN_MAX printable
 * ASCII characters without spaces (`keel-server keygen FILE` writes a good
 * one), at most KP_TOKENS_MAX of them (several: rotation); blank lines and
 * lines starting with '#' are skipped, CRLF is tolerated. The file rules
 * are kp_key_load()'s: a regular file, mode & 077 == 0, else -EPERM.
 * -ENOENT, -EACCES from open; -EFBIG over KP_TOKEN_FILE_MAX bytes; -EINVAL
 * for a bad line (file:line in @err) or no token at all. @out is zeroed on
 * error. Any thread; no state.
 */
int kp_tokens_load(const char *path, struct kp_tokens *out, char *err, size_t errlen);
/* The parser of kp_tokens_load() (@path only names the file in @err). */
int kp_tokens_parse(const char *path, const char *text, size_t len, struct kp_tokens *out,
		    char *err, size_t errlen);

#endif
