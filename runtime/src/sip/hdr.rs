//! Header names Kamailio knows by type, with their compact forms.

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HdrKind {
    Via,
    From,
    To,
    CallId,
    CSeq,
    Contact,
    MaxForwards,
    Route,
    RecordRoute,
    ContentType,
    ContentLength,
    Authorization,
    ProxyAuthorization,
    WwwAuthenticate,
    ProxyAuthenticate,
    Expires,
    MinExpires,
    Require,
    ProxyRequire,
    Supported,
    Unsupported,
    Allow,
    AllowEvents,
    Event,
    Accept,
    AcceptLanguage,
    AcceptEncoding,
    AcceptContact,
    RejectContact,
    RequestDisposition,
    UserAgent,
    Server,
    Organization,
    Priority,
    Subject,
    Path,
    Privacy,
    Date,
    Diversion,
    RemotePartyId,
    PAssertedIdentity,
    PPreferredIdentity,
    ReferTo,
    ReferredBy,
    SessionExpires,
    MinSe,
    ContentEncoding,
    ContentDisposition,
    Identity,
    IdentityInfo,
    RetryAfter,
    Reason,
    Warning,
    SipIfMatch,
    SubscriptionState,
    Other,
}

/// Classifies a header name (case-insensitive; compact forms included).
pub fn kind_of(name: &[u8]) -> HdrKind {
    use HdrKind::*;
    if name.len() == 1 {
        return match name[0].to_ascii_lowercase() {
            b'v' => Via,
            b'f' => From,
            b't' => To,
            b'i' => CallId,
            b'm' => Contact,
            b'l' => ContentLength,
            b'c' => ContentType,
            b'k' => Supported,
            b's' => Subject,
            b'e' => ContentEncoding,
            b'o' => Event,
            b'u' => AllowEvents,
            b'r' => ReferTo,
            b'b' => ReferredBy,
            b'x' => SessionExpires,
            b'y' => Identity,
            b'a' => AcceptContact,
            b'j' => RejectContact,
            b'd' => RequestDisposition,
            _ => Other,
        };
    }
    let mut buf = [0u8; 24];
    if name.len() > buf.len() {
        return Other;
    }
    let lower = &mut buf[..name.len()];
    lower.copy_from_slice(name);
    lower.make_ascii_lowercase();
    match &*lower {
        b"via" => Via,
        b"from" => From,
        b"to" => To,
        b"call-id" => CallId,
        b"cseq" => CSeq,
        b"contact" => Contact,
        b"max-forwards" => MaxForwards,
        b"route" => Route,
        b"record-route" => RecordRoute,
        b"content-type" => ContentType,
        b"content-length" => ContentLength,
        b"authorization" => Authorization,
        b"proxy-authorization" => ProxyAuthorization,
        b"www-authenticate" => WwwAuthenticate,
        b"proxy-authenticate" => ProxyAuthenticate,
        b"expires" => Expires,
        b"min-expires" => MinExpires,
        b"require" => Require,
        b"proxy-require" => ProxyRequire,
        b"supported" => Supported,
        b"unsupported" => Unsupported,
        b"allow" => Allow,
        b"allow-events" => AllowEvents,
        b"event" => Event,
        b"accept" => Accept,
        b"accept-language" => AcceptLanguage,
        b"accept-encoding" => AcceptEncoding,
        b"accept-contact" => AcceptContact,
        b"reject-contact" => RejectContact,
        b"request-disposition" => RequestDisposition,
        b"user-agent" => UserAgent,
        b"server" => Server,
        b"organization" => Organization,
        b"priority" => Priority,
        b"subject" => Subject,
        b"path" => Path,
        b"privacy" => Privacy,
        b"date" => Date,
        b"diversion" => Diversion,
        b"remote-party-id" => RemotePartyId,
        b"p-asserted-identity" => PAssertedIdentity,
        b"p-preferred-identity" => PPreferredIdentity,
        b"refer-to" => ReferTo,
        b"referred-by" => ReferredBy,
        b"session-expires" => SessionExpires,
        b"min-se" => MinSe,
        b"content-encoding" => ContentEncoding,
        b"content-disposition" => ContentDisposition,
        b"identity" => Identity,
        b"identity-info" => IdentityInfo,
        b"retry-after" => RetryAfter,
        b"reason" => Reason,
        b"warning" => Warning,
        b"sip-if-match" => SipIfMatch,
        b"subscription-state" => SubscriptionState,
        _ => Other,
    }
}

/// True when two header names denote the same header (long/compact forms, any case).
pub fn same_name(a: &[u8], b: &[u8]) -> bool {
    if a.eq_ignore_ascii_case(b) {
        return true;
    }
    let (ka, kb) = (kind_of(a), kind_of(b));
    ka != HdrKind::Other && ka == kb
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_and_case() {
        assert_eq!(kind_of(b"v"), HdrKind::Via);
        assert_eq!(kind_of(b"CALL-ID"), HdrKind::CallId);
        assert_eq!(kind_of(b"X-Foo"), HdrKind::Other);
        assert!(same_name(b"m", b"Contact"));
        assert!(same_name(b"X-A", b"x-a"));
        assert!(!same_name(b"X-A", b"X-B"));
        assert_eq!(kind_of(&[b'a'; 40]), HdrKind::Other);
    }
}
