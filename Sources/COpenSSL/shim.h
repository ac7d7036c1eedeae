#ifndef KETENPOST_COPENSSL_SHIM_H
#define KETENPOST_COPENSSL_SHIM_H
#include <openssl/opensslv.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <openssl/x509_vfy.h>
#include <openssl/cms.h>
#include <openssl/objects.h>
#include <openssl/rsa.h>
#include <openssl/ec.h>
#include <openssl/rand.h>
#include <openssl/ocsp.h>

/* Function-like and compound macros that Swift cannot import. */
static inline long copenssl_BIO_get_mem_data(BIO *b, char **pp) { return BIO_get_mem_data(b, pp); }
static inline void copenssl_OPENSSL_free(void *p) { OPENSSL_free(p); }
static inline unsigned long copenssl_XN_FLAG_RFC2253(void) { return XN_FLAG_RFC2253; }
static inline int copenssl_MBSTRING_UTF8(void) { return MBSTRING_UTF8; }
static inline STACK_OF(X509) *copenssl_sk_X509_new_null(void) { return sk_X509_new_null(); }
static inline int copenssl_sk_X509_push(STACK_OF(X509) *sk, X509 *x) { return sk_X509_push(sk, x); }
static inline int copenssl_sk_X509_num(const STACK_OF(X509) *sk) { return sk_X509_num(sk); }
static inline X509 *copenssl_sk_X509_value(const STACK_OF(X509) *sk, int i) { return sk_X509_value(sk, i); }
static inline void copenssl_sk_X509_free(STACK_OF(X509) *sk) { sk_X509_free(sk); }
static inline void copenssl_sk_X509_pop_free(STACK_OF(X509) *sk) { sk_X509_pop_free(sk, X509_free); }
static inline int copenssl_sk_CMS_RecipientInfo_num(STACK_OF(CMS_RecipientInfo) *sk) { return sk_CMS_RecipientInfo_num(sk); }
static inline int copenssl_sk_CMS_SignerInfo_num(STACK_OF(CMS_SignerInfo) *sk) { return sk_CMS_SignerInfo_num(sk); }
static inline EVP_PKEY *copenssl_EVP_EC_gen_p256(void) { return EVP_EC_gen("P-256"); }
static inline EVP_PKEY *copenssl_EVP_RSA_gen(unsigned int bits) { return EVP_RSA_gen(bits); }
static inline void copenssl_X509V3_set_ctx_nodb(X509V3_CTX *ctx) { X509V3_set_ctx_nodb(ctx); }
/* CRL distribution points: the full-name URIs of one point. */
static inline int copenssl_sk_DIST_POINT_num(const STACK_OF(DIST_POINT) *sk) { return sk_DIST_POINT_num(sk); }
static inline DIST_POINT *copenssl_sk_DIST_POINT_value(const STACK_OF(DIST_POINT) *sk, int i) { return sk_DIST_POINT_value(sk, i); }
static inline void copenssl_sk_DIST_POINT_pop_free(STACK_OF(DIST_POINT) *sk) { sk_DIST_POINT_pop_free(sk, DIST_POINT_free); }
static inline int copenssl_DIST_POINT_name_count(const DIST_POINT *p) {
    if (p == NULL || p->distpoint == NULL || p->distpoint->type != 0) return 0;
    return sk_GENERAL_NAME_num(p->distpoint->name.fullname);
}
/* The i-th full name if it is a URI (its bytes and length), else NULL. */
static inline const unsigned char *copenssl_DIST_POINT_uri(const DIST_POINT *p, int i, int *length) {
    GENERAL_NAME *name = sk_GENERAL_NAME_value(p->distpoint->name.fullname, i);
    if (name == NULL || name->type != GEN_URI) return NULL;
    *length = ASN1_STRING_length(name->d.uniformResourceIdentifier);
    return ASN1_STRING_get0_data(name->d.uniformResourceIdentifier);
}
/* OCSP responder URLs of a certificate (authorityInfoAccess). */
static inline int copenssl_sk_OPENSSL_STRING_num(STACK_OF(OPENSSL_STRING) *sk) { return sk_OPENSSL_STRING_num(sk); }
static inline const char *copenssl_sk_OPENSSL_STRING_value(STACK_OF(OPENSSL_STRING) *sk, int i) { return sk_OPENSSL_STRING_value(sk, i); }
static inline int copenssl_OCSP_RESPONSE_STATUS_SUCCESSFUL(void) { return OCSP_RESPONSE_STATUS_SUCCESSFUL; }
static inline int copenssl_V_OCSP_CERTSTATUS_GOOD(void) { return V_OCSP_CERTSTATUS_GOOD; }
static inline int copenssl_V_OCSP_CERTSTATUS_REVOKED(void) { return V_OCSP_CERTSTATUS_REVOKED; }
static inline int copenssl_sk_X509_REVOKED_num(const STACK_OF(X509_REVOKED) *sk) { return sk_X509_REVOKED_num(sk); }
#endif
