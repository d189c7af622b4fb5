//! Request methods with Kamailio's bit values (METHOD_* in parser/msg_parser.h).

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    Invite,
    Cancel,
    Ack,
    Bye,
    Info,
    Register,
    Subscribe,
    Notify,
    Message,
    Options,
    Prack,
    Update,
    Refer,
    Publish,
    Kdmq,
    Get,
    Post,
    Put,
    Delete,
    Other,
}

impl Method {
    pub fn parse(m: &[u8]) -> Method {
        // Methods are case-sensitive in SIP; Kamailio matches them case-insensitively.
        match m.to_ascii_uppercase().as_slice() {
            b"INVITE" => Method::Invite,
            b"CANCEL" => Method::Cancel,
            b"ACK" => Method::Ack,
            b"BYE" => Method::Bye,
            b"INFO" => Method::Info,
            b"REGISTER" => Method::Register,
            b"SUBSCRIBE" => Method::Subscribe,
            b"NOTIFY" => Method::Notify,
            b"MESSAGE" => Method::Message,
            b"OPTIONS" => Method::Options,
            b"PRACK" => Method::Prack,
            b"UPDATE" => Method::Update,
            b"REFER" => Method::Refer,
            b"PUBLISH" => Method::Publish,
            b"KDMQ" => Method::Kdmq,
            b"GET" => Method::Get,
            b"POST" => Method::Post,
            b"PUT" => Method::Put,
            b"DELETE" => Method::Delete,
            _ => Method::Other,
        }
    }

    /// Kamailio's METHOD_* bit.
    pub fn bit(self) -> u32 {
        match self {
            Method::Invite => 1,
            Method::Cancel => 2,
            Method::Ack => 4,
            Method::Bye => 8,
            Method::Info => 16,
            Method::Register => 32,
            Method::Subscribe => 64,
            Method::Notify => 128,
            Method::Message => 256,
            Method::Options => 512,
            Method::Prack => 1024,
            Method::Update => 2048,
            Method::Refer => 4096,
            Method::Publish => 8192,
            Method::Kdmq => 16384,
            Method::Get => 32768,
            Method::Post => 65536,
            Method::Put => 131072,
            Method::Delete => 262144,
            Method::Other => 524288,
        }
    }

    /// The method a one-letter code of `KSR.is_method_in("IRS...")` stands for
    /// (either case).
    pub fn from_letter(c: u8) -> Option<Method> {
        Some(match c.to_ascii_uppercase() {
            b'I' => Method::Invite,
            b'A' => Method::Ack,
            b'B' => Method::Bye,
            b'C' => Method::Cancel,
            b'M' => Method::Message,
            b'R' => Method::Register,
            b'E' => Method::Prack,
            b'P' => Method::Publish,
            b'S' => Method::Subscribe,
            b'N' => Method::Notify,
            b'O' => Method::Options,
            b'F' => Method::Refer,
            b'G' => Method::Get,
            b'U' => Method::Update,
            b'K' => Method::Kdmq,
            b'D' => Method::Delete,
            b'T' => Method::Post,
            b'V' => Method::Put,
            _ => return None,
        })
    }
}
