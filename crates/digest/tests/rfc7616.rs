//! RFC 7616 §3.9.1 example (MD5 and SHA-256), and the no-qop legacy form.

use lyrebird_digest::{Algorithm, Challenge, DigestInput, authorization_value, digest_response};

fn challenge(alg: &str) -> Challenge {
    Challenge::parse(&format!(
        "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", algorithm={alg}, \
         nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", \
         opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\""
    ))
    .unwrap()
}

const INPUT: DigestInput<'static> = DigestInput {
    username: "Mufasa",
    password: "Circle of Life",
    method: "GET",
    uri: "/dir/index.html",
    cnonce: "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
    nonce_count: 1,
};

#[test]
fn rfc7616_md5_vector() {
    let c = challenge("MD5");
    assert_eq!(c.algorithm, Algorithm::Md5);
    assert_eq!(
        digest_response(&c, &INPUT),
        "8ca523f5e9506fed4657c9700eebdbec"
    );
    let header = authorization_value(&c, &INPUT).unwrap();
    assert!(header.contains("nc=00000001"));
    assert!(header.contains("opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\""));
}

#[test]
fn rfc7616_sha256_vector() {
    let c = challenge("SHA-256");
    assert_eq!(
        digest_response(&c, &INPUT),
        "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    );
}

#[test]
fn sha256_is_preferred_when_both_are_offered() {
    let md5 = "Digest realm=\"r\", nonce=\"n\", algorithm=MD5";
    let sha = "Digest realm=\"r\", nonce=\"n\", algorithm=SHA-256";
    let best = Challenge::best([md5, sha].into_iter()).unwrap();
    assert_eq!(best.algorithm, Algorithm::Sha256);
}

#[test]
fn legacy_no_qop_response() {
    // RFC 2069 form: H(HA1:nonce:HA2), checked against an independent computation.
    let c = Challenge::parse("Digest realm=\"biloxi.com\", nonce=\"abc\"").unwrap();
    let input = DigestInput {
        method: "REGISTER",
        uri: "sip:biloxi.com",
        ..INPUT
    };
    let ha1 = Algorithm::Md5.hash_hex("Mufasa:biloxi.com:Circle of Life");
    let ha2 = Algorithm::Md5.hash_hex("REGISTER:sip:biloxi.com");
    let expected = Algorithm::Md5.hash_hex(&format!("{ha1}:abc:{ha2}"));
    assert_eq!(digest_response(&c, &input), expected);
    assert!(!authorization_value(&c, &input).unwrap().contains("qop"));
}
