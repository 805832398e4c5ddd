#ifndef OCIMAN_CCRYPTO_SHIM_H
#define OCIMAN_CCRYPTO_SHIM_H

// Only the EVP digest API is needed: it picks the SHA-NI code path at runtime.
#include <openssl/evp.h>

#endif
