"""What protocol decoders may say: one typed shape per Observation kind (the data keys, their
types and meaning), the contract between protocols/ and inventory/, checks/ and knowledge/.

Decoders build `Observation.data` as keyword arguments of `Packet.observe(kind, proto, ...)`; a
test decodes the shared captures and the demo plant and fails on any key or type not declared
here. docs/observations.md is generated from this module (tools/gen_docs.py) and a test keeps it
equal, so adding a key means adding it here, once."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, TypedDict, get_type_hints

Text = str | None
Int = int | None
Bool = bool | None


class Identity(TypedDict, total=False):
    vendor: Annotated[Text, "vendor name as the device states it"]
    vendor_id: Annotated[Int, "numeric vendor id (CIP, BACnet, PROFINET)"]
    product: Annotated[Text, "product name"]
    product_code: Annotated[Int, "numeric product code"]
    model: Annotated[Text, "model or type designation"]
    order_number: Annotated[Text, "order number / article number (e.g. 6ES7 …)"]
    firmware: Annotated[Text, "firmware or software revision"]
    hardware: Annotated[Text, "hardware revision"]
    serial: Annotated[Text, "serial number"]
    revision_number: Annotated[Int, "EtherCAT revision number (CoE object 0x1018:3, SII EEPROM word 0x000C)"]
    slave_count: Annotated[Int, "EtherCAT: slaves that answered the master's broadcast read of register 0 "
                                "(its working counter)"]
    idcode: Annotated[Int, "C37.118 IDCODE: the data stream id of a PMU or PDC"]
    pmu_count: Annotated[Int, "C37.118: PMU blocks in the stream's configuration frame (NUM_PMU)"]
    pmus: Annotated[list | None, "C37.118: the PMUs of the stream's configuration: {station, idcode, "
                                 "nominal_frequency, cfgcnt, phasors, analogs, digitals}"]
    nominal_frequency: Annotated[Int, "nominal line frequency in Hz (C37.118 FNOM of the first PMU)"]
    data_rate: Annotated[Int, "C37.118 DATA_RATE: data frames per second (negative: seconds per frame)"]
    cfgcnt: Annotated[Int, "C37.118 configuration change count (CFGCNT) of the first PMU"]
    memory_card_serial: Annotated[Text, "serial number of the memory card (S7 SZL 0x001C index 8)"]
    plant_id: Annotated[Text, "plant designation of the module (S7 SZL 0x001C index 3)"]
    name: Annotated[Text, "station, PLC or host name"]
    device_type: Annotated[Text, "device type in words"]
    device_type_id: Annotated[Int, "numeric device type (CIP)"]
    description: Annotated[Text, "free text the device gives about itself (sysDescr, SSDP Server header, …)"]
    banner: Annotated[Text, "a server's own greeting, raw (FTP 220 / Telnet / SSH identification line / HTTP "
                            "Server header); the other keys of the observation are what it names"]
    title: Annotated[Text, "the <title> of an HTML page the device's web server serves"]
    os: Annotated[Text, "operating system"]
    os_version: Annotated[Text, "operating system version (Niagara Fox hello os.version)"]
    vm: Annotated[Text, "the Java VM a Niagara station or Workbench runs on (Fox hello vm.name)"]
    vm_version: Annotated[Text, "its version (Fox hello vm.version)"]
    vm_uuid: Annotated[Text, "the Niagara VM's UUID (Fox hello vmUuid)"]
    host_name: Annotated[Text, "the host name a Niagara station or Workbench gives itself (Fox hello hostName)"]
    host_address: Annotated[Text, "the address a Niagara host says it has (Fox hello hostAddress; behind NAT "
                                  "not the packet's, so it makes no asset of its own)"]
    host_id: Annotated[Text, "Niagara host id (Fox hello hostId)"]
    brand_id: Annotated[Text, "Niagara brand id of the OEM build, raw (Fox hello brandId, e.g. vykon)"]
    fox_version: Annotated[Text, "Niagara Fox protocol version the hello states (fox.version)"]
    time_zone: Annotated[Text, "time zone the device is set to (Fox hello timeZone, its name)"]
    module: Annotated[Text, "module or CPU designation"]
    role_hint: Annotated[Text, "a role the protocol suggests for the device"]
    software: Annotated[Text, "software product and version"]
    copyright: Annotated[Text, "copyright string (S7 SZL)"]
    state: Annotated[Text, "device state (CIP identity)"]
    status: Annotated[Text, "device status word in text (CIP identity)"]
    encapsulation_version: Annotated[Int, "EtherNet/IP encapsulation protocol version"]
    dnp3_address: Annotated[Int, "DNP3 link address"]
    device_instance: Annotated[Int, "BACnet device object instance"]
    max_apdu: Annotated[Int, "BACnet maximum APDU length accepted"]
    segmentation: Annotated[Text, "BACnet segmentation support"]
    location: Annotated[Text, "location the device reports (SNMP sysLocation, BACnet, S7 SZL 0x001C index 0x0B "
                              "location designation)"]
    contact: Annotated[Text, "contact person the device reports (SNMP sysContact)"]
    common_address: Annotated[Int, "IEC 60870-5-104 common address of ASDU"]
    device_id: Annotated[Int, "device id (Modbus Read Device Identification object, …)"]
    ams_net_id: Annotated[Text, "Beckhoff AMS NetId of the TwinCAT system (ADS discovery replies, the AMS header of its ADS replies)"]
    ip: Annotated[Text, "an IP address the device announces for itself"]
    netmask: Annotated[Text, "the netmask it announces"]
    gateway: Annotated[Text, "the default gateway it announces"]
    port: Annotated[Int, "a port the identity refers to (e.g. the encapsulation socket)"]
    application_uri: Annotated[Text, "OPC UA ApplicationUri"]
    product_uri: Annotated[Text, "OPC UA ProductUri"]
    endpoints: Annotated[list | None, "OPC UA endpoints offered (url, security mode, policy)"]
    sys_object_id: Annotated[Text, "SNMP sysObjectID"]
    enterprise: Annotated[Int, "IANA enterprise number from the sysObjectID"]
    snmp_engine_id: Annotated[Text, "SNMPv3 authoritative engine id (hex)"]
    chassis_id: Annotated[Text, "LLDP/CDP chassis id"]
    port_id: Annotated[Text, "LLDP/CDP port id"]
    port_description: Annotated[Text, "LLDP port description"]
    capabilities: Annotated[list | None, "LLDP/CDP system capabilities"]
    native_vlan: Annotated[Int, "CDP native VLAN"]
    dhcp_fingerprint: Annotated[Text, "DHCP parameter request list, comma-separated"]
    dhcp_vendor_class: Annotated[Text, "DHCP vendor class identifier (option 60)"]
    dhcp_client_id: Annotated[Text, "DHCP client identifier (option 61)"]
    dhcp_message: Annotated[Text, "DHCP message type"]
    dhcp_requested_ip: Annotated[Text, "DHCP requested address (option 50)"]
    mac: Annotated[Text, "a MAC address the identity belongs to"]
    user_agent: Annotated[Text, "HTTP User-Agent of a client (its browser or tool, never the device's product)"]
    ssdp_server: Annotated[Text, "HTTP/SSDP Server header"]
    ssh_client: Annotated[Text, "SSH client version string"]
    mqtt_client_id: Annotated[Text, "MQTT client id the client connected with (CONNECT)"]
    mqtt_user: Annotated[Text, "MQTT user name the client logged in with (CONNECT; never the password)"]
    route: Annotated[Text, "a module reached through the device (e.g. a CIP backplane path; an IEC 61850 "
                           "GOOSE control block or SV stream the IED publishes)"]
    hart_revision: Annotated[Int, "HART protocol major revision the device implements (HART-IP Read Unique "
                                  "Identifier)"]
    device_revision: Annotated[Int, "device revision level (HART Read Unique Identifier)"]
    hart_tag: Annotated[Text, "HART short tag, 8 packed-ASCII characters (Read Tag, Descriptor, Date)"]
    appid: Annotated[Int, "IEC 61850 GOOSE / SV APPID of the publication"]
    gocb_ref: Annotated[Text, "IEC 61850 GOOSE control block reference (gocbRef); its part before '/' names "
                              "the IED"]
    go_id: Annotated[Text, "IEC 61850 GOOSE goID"]
    dataset: Annotated[Text, "IEC 61850 data set reference a GOOSE or SV publication carries (datSet)"]
    conf_rev: Annotated[Int, "IEC 61850 configuration revision of the control block (confRev)"]
    sv_id: Annotated[Text, "IEC 61850-9-2 Sampled Values stream id (svID)"]
    smp_rate: Annotated[Int, "IEC 61850-9-2 sample rate (smpRate)"]
    bacnet_route: Annotated[Text, "the device is behind a BACnet router: its network and MAC (NPDU source "
                                  "network and address, 'network N mac HEX'); the packet's IP is the router's"]
    objects: Annotated[list | None, "BACnet objects the device named (ReadProperty / ReadPropertyMultiple ACKs "
                                    "of object-name on non-device objects, I-Have): {type, instance, name[, "
                                    "device_instance]}"]


class Service(TypedDict, total=False):
    name: Annotated[str, "application protocol offered (a protocol name)"]
    banner: Annotated[Text, "greeting or banner text"]
    software: Annotated[Text, "server software named by the protocol"]
    version: Annotated[Text, "protocol or software version"]
    transport: Annotated[Text, "transport the service runs over, where not the flow's"]
    server_id: Annotated[Text, "server id (Modbus Report Server ID, …)"]
    realm: Annotated[Text, "HTTP authentication realm"]
    auth_scheme: Annotated[Text, "authentication scheme (HTTP; the Niagara Fox challenge method)"]
    protocol_version: Annotated[Text, "protocol version announced"]
    calling_tsap: Annotated[Text, "COTP calling TSAP"]
    called_tsap: Annotated[Text, "COTP called TSAP"]
    max_pdu: Annotated[Int, "largest PDU the side accepts, in bytes (MMS initiate localDetail)"]
    parameter_cbb: Annotated[Text, "MMS initiate parameter CBB bits proposed or granted (hex)"]


class Operation(TypedDict, total=False):
    category: Annotated[str, "what it does, one of model.OP_CATEGORIES"]
    code: Annotated[int | str | None, "function or service code"]
    name: Annotated[Text, "function or service name"]
    detail: Annotated[Text, "what it addressed (registers, tag path, block, …)"]
    unit: Annotated[Int, "Modbus unit id"]
    method: Annotated[Text, "HTTP method"]
    host: Annotated[Text, "HTTP Host header"]
    uri: Annotated[Text, "HTTP request URI"]
    version: Annotated[Text, "HTTP version"]
    name_of_station: Annotated[Text, "PROFINET DCP: the NameOfStation an Identify asks for (a search, or a "
                                     "station checking that its own name is unique) or a Set assigns to dst"]


class Credential(TypedDict, total=False):
    user: Annotated[Text, "user name (None when not visible)"]
    password: Annotated[Text, "password or community (None when not visible)"]
    secret_type: Annotated[str, "password, community, basic, digest, usm, token, certificate, anonymous"]
    cleartext: Annotated[bool, "the secret crossed the network readable"]
    result: Annotated[Text, "success, failure, or None when the reply was not seen"]
    reply_code: Annotated[Int, "the server's reply code"]
    version: Annotated[Text, "protocol version the login used (SNMP)"]
    auth: Annotated[Bool, "SNMPv3: authentication used"]
    priv: Annotated[Bool, "SNMPv3: privacy (encryption) used"]


class Session(TypedDict, total=False):
    security_mode: Annotated[Text, "None, Sign or SignAndEncrypt (OPC UA)"]
    policy: Annotated[Text, "security policy"]
    auth: Annotated[Text, "how the client authenticated: anonymous, username, certificate, …"]
    protocol_version: Annotated[Text, "protocol version"]
    encrypted: Annotated[Bool, "the session is encrypted"]
    endpoint_url: Annotated[Text, "OPC UA endpoint URL"]
    client_id: Annotated[Text, "MQTT client id"]
    clean_session: Annotated[Bool, "MQTT clean session flag"]
    keep_alive: Annotated[Int, "MQTT keep-alive seconds"]
    will_topic: Annotated[Text, "MQTT will topic"]


class Tls(TypedDict, total=False):
    version: Annotated[Text, "negotiated TLS version"]
    cipher: Annotated[Text, "negotiated cipher suite"]
    sni: Annotated[Text, "server name the client asked for"]
    version_code: Annotated[Int, "negotiated version, numeric"]
    cipher_code: Annotated[Int, "negotiated cipher suite, numeric"]
    weak_cipher: Annotated[Bool, "the negotiated suite is weak"]
    client_version: Annotated[Text, "the highest version the client offered"]
    offered_versions: Annotated[list | None, "versions the client offered"]
    offered_ciphers: Annotated[list | None, "cipher suites the client offered"]
    cipher_count: Annotated[Int, "number of suites offered"]
    offered_weak: Annotated[Bool, "the client offered a weak suite"]
    alpn: Annotated[list | None, "ALPN protocols"]
    curve: Annotated[Text, "key-exchange group"]
    dh_bits: Annotated[Int, "finite-field DH group size"]


class Certificate(TypedDict, total=False):
    subject: Annotated[Text, "subject distinguished name"]
    issuer: Annotated[Text, "issuer distinguished name"]
    not_before: Annotated[Text, "validity start, ISO 8601 UTC"]
    not_after: Annotated[Text, "validity end, ISO 8601 UTC"]
    self_signed: Annotated[Bool, "issuer equals subject and the signature verifies"]
    serial: Annotated[Text, "serial number (hex)"]
    key_type: Annotated[Text, "public key algorithm"]
    key_bits: Annotated[Int, "public key size"]
    sig_alg: Annotated[Text, "signature algorithm"]
    fingerprint: Annotated[Text, "SHA-256 fingerprint"]
    position: Annotated[Int, "place in the chain (0 = leaf)"]
    san_dns: Annotated[list | None, "DNS names in subjectAltName"]
    is_ca: Annotated[Bool, "basicConstraints CA flag"]
    curve: Annotated[Text, "EC curve name"]
    unparsed: Annotated[Bool, "the certificate could not be parsed"]


class Hostname(TypedDict, total=False):
    name: Annotated[str, "the host name"]
    source: Annotated[str, "where it was learnt: dhcp, dns, lldp, cdp, netbios, snmp"]
    ip: Annotated[Text, "the address a DNS answer names"]
    mac: Annotated[Text, "the MAC the name belongs to"]
    query: Annotated[Text, "the DNS query asked"]


class Address(TypedDict, total=False):
    ip: Annotated[str, "IP address"]
    mac: Annotated[str, "MAC address bound to it"]
    source: Annotated[str, "arp, dhcp or dcp"]
    gratuitous: Annotated[Bool, "a gratuitous ARP"]
    lease_time: Annotated[Int, "DHCP lease seconds"]


class Topic(TypedDict, total=False):
    topic: Annotated[str, "the topic name"]
    action: Annotated[str, "publish or subscribe"]


class Error(TypedDict, total=False):
    code: Annotated[int | str | None, "error or exception code"]
    name: Annotated[Text, "error name"]
    function: Annotated[Int, "function code the error answers (Modbus)"]
    function_name: Annotated[Text, "its name"]
    unit: Annotated[Int, "Modbus unit id"]
    service: Annotated[Int, "service code the error answers"]
    service_name: Annotated[Text, "its name"]
    ext_status: Annotated[Int, "extended status (CIP)"]
    command: Annotated[Int, "encapsulation command the error answers (EtherNet/IP)"]
    level: Annotated[Text, "alert level (TLS alerts)"]
    detail: Annotated[Text, "what the error concerns (IEC 61850 GOOSE / SV: the control block or stream)"]


class Role(TypedDict, total=False):
    role: Annotated[str, "broker, mqtt-client, dnp3-master, dnp3-outstation, io-controller, io-device, …"]
    reason: Annotated[str, "why, in words"]


@dataclass(frozen=True)
class Kind:
    name: str
    shape: type                 # the TypedDict of its data
    subject: str                # what the observation's `subject` side means for this kind
    consumers: tuple[str, ...]  # the modules that read this kind (kept true by a test)


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("identity", Identity, "the device described (src or dst)", ("inventory.build",)),
    Kind("service", Service, "the side that offers the service", ("inventory.build", "checks.services")),
    Kind("operation", Operation, "src asks dst to do something", ("checks.plc", "checks.zerotrust", "inventory.build")),
    Kind("credential", Credential, "a login from client (src) to server (dst)", ("checks.credentials", "checks.services")),
    Kind("session", Session, "the session's security posture", ("checks.crypto", "checks.zerotrust",
                                                                 "inventory.build")),
    Kind("tls", Tls, "dst for ClientHello facts, src for ServerHello facts", ("checks.crypto", "inventory.build")),
    Kind("certificate", Certificate, "the server that presented it", ("checks.crypto", "inventory.build")),
    Kind("hostname", Hostname, "the named host (DHCP clients by MAC)", ("inventory.build",)),
    Kind("address", Address, "an IP <-> MAC binding", ("inventory.build",)),
    Kind("topic", Topic, "the MQTT client", ("checks.crypto",)),
    Kind("error", Error, "the side that answered with an error", ("inventory.build",)),
    Kind("role", Role, "the host the protocol gives a role", ("inventory.build",)),
)}


def keys_of(kind: str) -> dict[str, tuple[Any, str]]:
    """key -> (type, meaning) for one kind."""
    shape = KINDS[kind].shape
    hints = get_type_hints(shape, include_extras=True)
    return {k: (h.__origin__, h.__metadata__[0]) for k, h in hints.items()}
