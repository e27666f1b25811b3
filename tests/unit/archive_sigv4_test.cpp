// SigV4 against the worked examples of the Amazon S3 API Reference, "Signature Calculations
// for the Authorization Header: Transferring Payload in a Single Chunk": same credentials,
// date and bucket; every intermediate string must match byte for byte.

#include <catch2/catch.hpp>

#include "archive/sigv4.hpp"

using namespace telemetryd::archive;

namespace {

const SigV4Credentials kAws{"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                            "us-east-1", "s3"};
constexpr const char* kDate = "20130524T000000Z";
constexpr const char* kHost = "examplebucket.s3.amazonaws.com";
const std::string kEmpty(kEmptyPayloadSha256);

}  // namespace

TEST_CASE("SigV4: GET Object with a Range header", "[archive][sigv4]") {
  const SigV4Request request{"GET",
                             "/test.txt",
                             {},
                             {{"Host", kHost},
                              {"Range", "bytes=0-9"},
                              {"x-amz-content-sha256", kEmpty},
                              {"x-amz-date", kDate}},
                             kEmpty};
  const SigV4Result r = sign_v4(kAws, request, kDate);
  CHECK(r.canonical_request ==
        "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n"
        "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
        "x-amz-date:20130524T000000Z\n\nhost;range;x-amz-content-sha256;x-amz-date\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(r.string_to_sign ==
        "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
        "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
  CHECK(r.signature == "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
  CHECK(r.authorization ==
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

TEST_CASE("SigV4: PUT Object with a '$' in the key and a signed body", "[archive][sigv4]") {
  const std::string body = "Welcome to Amazon S3.";
  const std::string hash = sha256_hex(body);
  CHECK(hash == "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
  // Header order and name case as a client might send them: canonicalisation sorts them.
  const SigV4Request request{"PUT",
                             "/test$file.text",
                             {},
                             {{"x-amz-storage-class", "REDUCED_REDUNDANCY"},
                              {"Date", "Fri, 24 May 2013 00:00:00 GMT"},
                              {"Host", kHost},
                              {"x-amz-date", kDate},
                              {"x-amz-content-sha256", hash}},
                             hash};
  const SigV4Result r = sign_v4(kAws, request, kDate);
  CHECK(r.canonical_request ==
        "PUT\n/test%24file.text\n\ndate:Fri, 24 May 2013 00:00:00 GMT\n"
        "host:examplebucket.s3.amazonaws.com\n"
        "x-amz-content-sha256:44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072\n"
        "x-amz-date:20130524T000000Z\nx-amz-storage-class:REDUCED_REDUNDANCY\n\n"
        "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class\n"
        "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
  CHECK(sha256_hex(r.canonical_request) ==
        "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d");
  CHECK(r.signature == "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
  CHECK(r.signed_headers == "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class");
}

TEST_CASE("SigV4: GET Bucket lifecycle, a query parameter without value", "[archive][sigv4]") {
  const SigV4Request request{
      "GET",
      "/",
      {{"lifecycle", ""}},
      {{"Host", kHost}, {"x-amz-date", kDate}, {"x-amz-content-sha256", kEmpty}},
      kEmpty};
  const SigV4Result r = sign_v4(kAws, request, kDate);
  CHECK(r.canonical_request.rfind("GET\n/\nlifecycle=\nhost:", 0) == 0);
  CHECK(sha256_hex(r.canonical_request) ==
        "9766c798316ff2757b517bc739a67f6213b4ab36dd5da2f94eaebf79c77395ca");
  CHECK(r.signature == "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
}

TEST_CASE("SigV4: GET Bucket (List Objects), query sorted by name", "[archive][sigv4]") {
  // Given in the opposite order: the canonical query must sort them.
  const SigV4Request request{
      "GET",
      "/",
      {{"prefix", "J"}, {"max-keys", "2"}},
      {{"Host", kHost}, {"x-amz-date", kDate}, {"x-amz-content-sha256", kEmpty}},
      kEmpty};
  const SigV4Result r = sign_v4(kAws, request, kDate);
  CHECK(r.canonical_request.rfind("GET\n/\nmax-keys=2&prefix=J\n", 0) == 0);
  CHECK(sha256_hex(r.canonical_request) ==
        "df57d21db20da04d7fa30298dd4488ba3a2b47ca3a489c74750e0f1e7df1b9b7");
  CHECK(r.signature == "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
}

TEST_CASE("SigV4: the signing key chain and a wrong secret", "[archive][sigv4]") {
  // A different secret must change the signature (the store's wrong-key test relies on it).
  SigV4Credentials wrong = kAws;
  wrong.secret_access_key.back() = 'X';
  const SigV4Request request{"GET", "/", {}, {{"host", kHost}, {"x-amz-date", kDate}}, kEmpty};
  CHECK(sign_v4(kAws, request, kDate).signature != sign_v4(wrong, request, kDate).signature);
  CHECK(signing_key(kAws.secret_access_key, "20130524", "us-east-1", "s3").size() == 32);
  // RFC 4231 test case 2 pins the HMAC itself.
  CHECK(hex_lower(hmac_sha256("Jefe", "what do ya want for nothing?")) ==
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST_CASE("SigV4: URI encoding, header folding and x-amz-date", "[archive][sigv4]") {
  CHECK(uri_encode("a b/c~d_e-f.g", false) == "a%20b/c~d_e-f.g");
  CHECK(uri_encode("a b/c", true) == "a%20b%2Fc");
  CHECK(uri_encode("\xc3\xa9+=", true) == "%C3%A9%2B%3D");
  CHECK(canonical_query({{"b", "2"}, {"a", "x y"}, {"a", "1"}}) == "a=1&a=x%20y&b=2");
  CHECK(canonical_query({{"continuation-token", "1/Ab+c="}}) == "continuation-token=1%2FAb%2Bc%3D");
  const SigV4Request request{
      "GET", "/", {}, {{"Host", "h"}, {"X-Multi", "  a   b  "}, {"x-multi", "c"}}, kEmpty};
  CHECK(sign_v4(kAws, request, kDate).canonical_request.find("x-multi:a b,c\n") !=
        std::string::npos);
  CHECK(amz_date(std::chrono::system_clock::time_point(std::chrono::seconds(1369353600))) ==
        "20130524T000000Z");
}
