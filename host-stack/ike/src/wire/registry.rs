//! IANA registries of IKEv2 (RFC 7296 §3 and the "IKEv2 Parameters" registry) as enums.
//! Every enum keeps values it does not name in `Unknown(raw)`, so a value read off the wire
//! always converts back to the same number.

macro_rules! registry {
    ($(#[$meta:meta])* $name:ident : $raw:ty { $($(#[$vmeta:meta])* $variant:ident = $value:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
            /// A value this registry does not name, kept as it was read.
            Unknown($raw),
        }

        impl From<$raw> for $name {
            fn from(raw: $raw) -> Self {
                match raw {
                    $($value => $name::$variant,)*
                    other => $name::Unknown(other),
                }
            }
        }

        impl From<$name> for $raw {
            fn from(value: $name) -> $raw {
                match value {
                    $($name::$variant => $value,)*
                    $name::Unknown(raw) => raw,
                }
            }
        }
    };
}

registry! {
    /// Exchange types (§3.1).
    ExchangeType: u8 {
        IkeSaInit = 34,
        IkeAuth = 35,
        CreateChildSa = 36,
        Informational = 37,
        /// RFC 9242.
        IkeIntermediate = 43,
    }
}

registry! {
    /// Next-payload types (§3.2; SKF from RFC 7383).
    PayloadType: u8 {
        None = 0,
        Sa = 33,
        Ke = 34,
        IdI = 35,
        IdR = 36,
        Cert = 37,
        CertReq = 38,
        Auth = 39,
        Nonce = 40,
        Notify = 41,
        Delete = 42,
        VendorId = 43,
        TsI = 44,
        TsR = 45,
        Sk = 46,
        Cp = 47,
        Eap = 48,
        Skf = 53,
    }
}

registry! {
    /// Security protocol identifiers (§3.3.1). Notify and Delete payloads about the IKE SA
    /// itself may carry 0, which reads as `Unknown(0)`.
    ProtocolId: u8 {
        Ike = 1,
        Ah = 2,
        Esp = 3,
    }
}

registry! {
    /// Identification types (§3.5).
    IdType: u8 {
        Ipv4Addr = 1,
        Fqdn = 2,
        Rfc822Addr = 3,
        Ipv6Addr = 5,
        DerAsn1Dn = 9,
        DerAsn1Gn = 10,
        KeyId = 11,
    }
}

registry! {
    /// Traffic selector types (§3.13.1).
    TsType: u8 {
        Ipv4AddrRange = 7,
        Ipv6AddrRange = 8,
    }
}

registry! {
    /// Authentication methods (§3.8; ECDSA from RFC 4754, digital signature from RFC 7427).
    AuthMethod: u8 {
        Rsa = 1,
        Psk = 2,
        Dss = 3,
        EcdsaP256 = 9,
        EcdsaP384 = 10,
        EcdsaP521 = 11,
        GenericSecurePassword = 12,
        Null = 13,
        DigitalSignature = 14,
    }
}

registry! {
    /// Certificate encodings (§3.6).
    CertEncoding: u8 {
        Pkcs7 = 1,
        Pgp = 2,
        DnsSignedKey = 3,
        X509Sig = 4,
        Kerberos = 6,
        Crl = 7,
        Arl = 8,
        Spki = 9,
        X509Attr = 10,
        RawRsa = 11,
        HashUrlX509 = 12,
        HashUrlBundle = 13,
    }
}

registry! {
    /// Notify message types (§3.10.1 and later RFCs in the IANA registry).
    NotifyType: u16 {
        UnsupportedCriticalPayload = 1,
        InvalidIkeSpi = 4,
        InvalidMajorVersion = 5,
        InvalidSyntax = 7,
        InvalidMessageId = 9,
        InvalidSpi = 11,
        NoProposalChosen = 14,
        InvalidKePayload = 17,
        AuthenticationFailed = 24,
        SinglePairRequired = 34,
        NoAdditionalSas = 35,
        InternalAddressFailure = 36,
        FailedCpRequired = 37,
        TsUnacceptable = 38,
        InvalidSelectors = 39,
        UnacceptableAddresses = 40,
        UnexpectedNatDetected = 41,
        UseAssignedHoa = 42,
        TemporaryFailure = 43,
        ChildSaNotFound = 44,
        InitialContact = 16384,
        SetWindowSize = 16385,
        AdditionalTsPossible = 16386,
        IpcompSupported = 16387,
        NatDetectionSourceIp = 16388,
        NatDetectionDestinationIp = 16389,
        Cookie = 16390,
        UseTransportMode = 16391,
        HttpCertLookupSupported = 16392,
        RekeySa = 16393,
        EspTfcPaddingNotSupported = 16394,
        NonFirstFragmentsAlso = 16395,
        MobikeSupported = 16396,
        AdditionalIp4Address = 16397,
        AdditionalIp6Address = 16398,
        NoAdditionalAddresses = 16399,
        UpdateSaAddresses = 16400,
        Cookie2 = 16401,
        NoNatsAllowed = 16402,
        AuthLifetime = 16403,
        MultipleAuthSupported = 16404,
        AnotherAuthFollows = 16405,
        RedirectSupported = 16406,
        Redirect = 16407,
        RedirectedFrom = 16408,
        EapOnlyAuthentication = 16417,
        ChildlessIkev2Supported = 16418,
        QuickCrashDetection = 16419,
        Ikev2FragmentationSupported = 16430,
        SignatureHashAlgorithms = 16431,
        IntermediateExchangeSupported = 16438,
    }
}

impl NotifyType {
    /// Types below 16384 report errors (§3.10.1).
    pub fn is_error(self) -> bool {
        u16::from(self) < 16384
    }
}

registry! {
    /// Transform types (§3.3.2).
    TransformType: u8 {
        Encr = 1,
        Prf = 2,
        Integ = 3,
        Dh = 4,
        Esn = 5,
    }
}

registry! {
    /// Encryption algorithms (transform type 1).
    EncrId: u16 {
        DesIv64 = 1,
        Des = 2,
        TripleDes = 3,
        Null = 11,
        AesCbc = 12,
        AesCtr = 13,
        AesCcm8 = 14,
        AesCcm12 = 15,
        AesCcm16 = 16,
        AesGcm8 = 18,
        AesGcm12 = 19,
        AesGcm16 = 20,
        NullAuthAesGmac = 21,
        CamelliaCbc = 23,
        ChaCha20Poly1305 = 28,
    }
}

impl EncrId {
    /// Whether the algorithm is an AEAD (no separate integrity transform).
    pub fn is_aead(self) -> bool {
        matches!(
            self,
            EncrId::AesCcm8
                | EncrId::AesCcm12
                | EncrId::AesCcm16
                | EncrId::AesGcm8
                | EncrId::AesGcm12
                | EncrId::AesGcm16
                | EncrId::ChaCha20Poly1305
        )
    }
}

registry! {
    /// Pseudorandom functions (transform type 2).
    PrfId: u16 {
        HmacMd5 = 1,
        HmacSha1 = 2,
        AesXcbc = 4,
        HmacSha256 = 5,
        HmacSha384 = 6,
        HmacSha512 = 7,
        AesCmac = 8,
    }
}

registry! {
    /// Integrity algorithms (transform type 3).
    IntegId: u16 {
        None = 0,
        HmacMd5_96 = 1,
        HmacSha1_96 = 2,
        AesXcbc96 = 5,
        AesCmac96 = 8,
        HmacSha256_128 = 12,
        HmacSha384_192 = 13,
        HmacSha512_256 = 14,
    }
}

registry! {
    /// Diffie-Hellman groups (transform type 4).
    DhGroup: u16 {
        None = 0,
        Modp768 = 1,
        Modp1024 = 2,
        Modp1536 = 5,
        Modp2048 = 14,
        Modp3072 = 15,
        Modp4096 = 16,
        Modp6144 = 17,
        Modp8192 = 18,
        Ecp256 = 19,
        Ecp384 = 20,
        Ecp521 = 21,
        Ecp192 = 25,
        Ecp224 = 26,
        Curve25519 = 31,
        Curve448 = 32,
    }
}

impl DhGroup {
    /// Length of a KE payload's public value for this group (RFC 7296 §3.4, RFC 5903 §7,
    /// RFC 8031 §3), or `None` for a group whose length espo does not know.
    pub fn public_len(self) -> Option<usize> {
        Some(match self {
            DhGroup::Modp768 => 96,
            DhGroup::Modp1024 => 128,
            DhGroup::Modp1536 => 192,
            DhGroup::Modp2048 => 256,
            DhGroup::Modp3072 => 384,
            DhGroup::Modp4096 => 512,
            DhGroup::Modp6144 => 768,
            DhGroup::Modp8192 => 1024,
            DhGroup::Ecp192 => 48,
            DhGroup::Ecp224 => 56,
            DhGroup::Ecp256 => 64,
            DhGroup::Ecp384 => 96,
            DhGroup::Ecp521 => 132,
            DhGroup::Curve25519 => 32,
            DhGroup::Curve448 => 56,
            DhGroup::None | DhGroup::Unknown(_) => return None,
        })
    }
}

registry! {
    /// Extended sequence numbers (transform type 5).
    Esn: u16 {
        No = 0,
        Yes = 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_raw_value_converts_back() {
        for raw in 0..=u8::MAX {
            assert_eq!(u8::from(PayloadType::from(raw)), raw);
            assert_eq!(u8::from(ExchangeType::from(raw)), raw);
            assert_eq!(u8::from(AuthMethod::from(raw)), raw);
            assert_eq!(u8::from(TransformType::from(raw)), raw);
        }
        for raw in 0..=u16::MAX {
            assert_eq!(u16::from(NotifyType::from(raw)), raw);
            assert_eq!(u16::from(DhGroup::from(raw)), raw);
            assert_eq!(u16::from(EncrId::from(raw)), raw);
            assert!(
                !matches!(NotifyType::from(raw), NotifyType::Unknown(v) if NotifyType::from(v) != NotifyType::Unknown(v))
            );
        }
        assert_eq!(PayloadType::from(46), PayloadType::Sk);
        assert_eq!(NotifyType::from(16431), NotifyType::SignatureHashAlgorithms);
        assert!(NotifyType::InvalidKePayload.is_error() && !NotifyType::Cookie.is_error());
        assert_eq!(DhGroup::Curve25519.public_len(), Some(32));
        assert_eq!(DhGroup::Unknown(999).public_len(), None);
    }
}
