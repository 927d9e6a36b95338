using System.Security.Cryptography.X509Certificates;
using System.Security.Cryptography;
using System.Text;
using EdgeSlm.EdgeModule.Azure;
using EdgeSlm.EdgeModule.Messaging;
using EdgeSlm.EdgeModule.Service;
using MQTTnet.Formatter;
using Microsoft.Extensions.Logging.Abstractions;

namespace EdgeSlm.EdgeModule.Tests.Azure;

/// <summary>Names, topics and SAS tokens as docs/protocols (azure-iot-edge.md) and the Azure SDKs write them.</summary>
public sealed class AzureProtocolTests
{
    private const string Hub = "myhub.azure-devices.net";
    private const string KeyBase64 = "ZWRnZXNsbS10ZXN0LWtleS0wMTIzNDU2Nzg5YWJjZGVm"; // "edgeslm-test-key-0123456789abcdef"
    private const long Expiry = 1767225600; // 2026-01-01T00:00:00Z

    [Fact]
    public void Module_client_id_user_name_and_resource_uri_follow_the_documented_formats()
    {
        var topics = new IotHubTopics(Hub, "pi-kitchen", "edgeslm");
        Assert.Equal("pi-kitchen/edgeslm", topics.ClientId);
        Assert.Equal("myhub.azure-devices.net/pi-kitchen/edgeslm/?api-version=2021-04-12", topics.UserName);
        Assert.Equal("myhub.azure-devices.net/devices/pi-kitchen/modules/edgeslm", topics.ResourceUri);
    }

    [Fact]
    public void Module_input_output_twin_and_method_topics_follow_the_documented_formats()
    {
        var topics = new IotHubTopics(Hub, "pi-kitchen", "edgeslm");
        Assert.Equal("devices/pi-kitchen/modules/edgeslm/inputs/#", topics.InputFilter);
        Assert.Equal("transcripts", topics.InputName("devices/pi-kitchen/modules/edgeslm/inputs/transcripts/%24.cdid=Dev&%24.cmid=Sender"));
        Assert.Equal("transcripts", topics.InputName("devices/pi-kitchen/modules/edgeslm/inputs/transcripts"));
        Assert.Null(topics.InputName("devices/other/modules/edgeslm/inputs/transcripts/"));
        Assert.Equal("devices/pi-kitchen/modules/edgeslm/messages/events/%24.on=intents&%24.ct=application%2Fjson&%24.ce=utf-8", topics.OutputTopic("intents"));
        Assert.Equal("$iothub/twin/GET/?$rid=7", IotHubTopics.TwinGet("7"));
        Assert.Equal("$iothub/twin/PATCH/properties/reported/?$rid=8", IotHubTopics.ReportedPatch("8"));
        Assert.Equal("$iothub/methods/res/404/?$rid=ab", IotHubTopics.MethodResponse(404, "ab"));
        Assert.Equal(200, IotHubTopics.TwinResponseStatus("$iothub/twin/res/200/?$rid=7"));
        Assert.Equal(204, IotHubTopics.TwinResponseStatus("$iothub/twin/res/204/?$rid=8&$version=3"));
        Assert.Equal("3", IotHubTopics.QueryValue("$iothub/twin/res/204/?$rid=8&$version=3", "$version"));
        Assert.Equal("8", IotHubTopics.QueryValue("$iothub/twin/res/204/?$rid=8&$version=3", "$rid"));
        Assert.Equal("classify", IotHubTopics.MethodName("$iothub/methods/POST/classify/?$rid=1"));
        Assert.Null(IotHubTopics.MethodName("$iothub/twin/res/200/?$rid=1"));
    }

    [Fact]
    public void Hmac_sha256_matches_rfc4231_and_an_rfc2104_construction_from_sha256()
    {
        // RFC 4231, test case 2.
        Assert.Equal("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            Convert.ToHexStringLower(SasToken.Sign("Jefe"u8, "what do ya want for nothing?"u8)));
        byte[] key = Convert.FromBase64String(KeyBase64);
        byte[] message = SasToken.StringToSign($"{Hub}/devices/pi-kitchen/modules/edgeslm", Expiry);
        Assert.Equal(Rfc2104(key, message), SasToken.Sign(key, message));
    }

    [Fact]
    public void Sas_token_equals_the_one_the_python_sdk_way_gives_for_a_fixed_key_and_expiry()
    {
        // Computed with Python's hmac and urllib.parse.quote(safe=""), as azure-iot-sdk-python's sastoken.py does.
        string token = SasToken.Create($"{Hub}/devices/pi-kitchen/modules/edgeslm", Convert.FromBase64String(KeyBase64), Expiry);
        Assert.Equal("SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fpi-kitchen%2Fmodules%2Fedgeslm"
            + "&sig=%2FrGv1%2Fl0lMSHopt5THqc4U8EuCVpMyMKxPBMay7kQHk%3D&se=1767225600", token);
        Assert.Equal(Encoding.UTF8.GetBytes("myhub.azure-devices.net%2Fdevices%2Fpi-kitchen%2Fmodules%2Fedgeslm\n1767225600"),
            SasToken.StringToSign($"{Hub}/devices/pi-kitchen/modules/edgeslm", Expiry));
    }

    [Fact]
    public void Connection_string_is_parsed_and_its_errors_name_the_field_but_never_the_key()
    {
        var parsed = IotHubConnectionString.Parse($"HostName={Hub};DeviceId=pi-kitchen;ModuleId=edgeslm;SharedAccessKey={KeyBase64};GatewayHostName=edge-gw");
        Assert.Equal(Hub, parsed.HostName);
        Assert.Equal("pi-kitchen", parsed.DeviceId);
        Assert.Equal("edgeslm", parsed.ModuleId);
        Assert.Equal("edge-gw", parsed.GatewayHostName);
        Assert.Equal(Convert.FromBase64String(KeyBase64), parsed.SharedAccessKey);
        Assert.DoesNotContain(KeyBase64, parsed.ToString());

        var settings = new AzureSettings { ConnectionString = $"HostName={Hub};SharedAccessKey={KeyBase64}" };
        string error = Assert.Single(settings.Validate());
        Assert.Equal("Azure:ConnectionString: DeviceId is missing", error);
        settings.ConnectionString = $"HostName={Hub};DeviceId=d;SharedAccessKeyName=iothubowner;SharedAccessKey={KeyBase64}";
        Assert.Contains("SharedAccessKeyName", Assert.Single(settings.Validate()));
        settings.ConnectionString = "HostName=h;DeviceId=d;SharedAccessKey=not*base64";
        Assert.Equal("Azure:ConnectionString: SharedAccessKey is not base64", Assert.Single(settings.Validate()));
    }

    [Fact]
    public void Edge_environment_is_used_when_the_workload_uri_is_set_and_missing_variables_are_named()
    {
        var environment = new Dictionary<string, string?> { ["IOTEDGE_WORKLOADURI"] = "unix:///var/run/iotedge/workload.sock" };
        var settings = new AzureSettings { Environment = name => environment.GetValueOrDefault(name) };
        Assert.True(settings.IsConfigured);
        Assert.Contains(settings.Validate(), e => e.StartsWith("Azure:UseEdgeEnvironment: IOTEDGE_IOTHUBHOSTNAME is not set", StringComparison.Ordinal));
        Assert.False(new AzureSettings { Environment = _ => null }.IsConfigured);
        Assert.False(new AzureSettings { UseEdgeEnvironment = false, Environment = name => environment.GetValueOrDefault(name) }.IsConfigured);

        var module = new ModuleSettings { Profiles = "azure" };
        module.Azure.Environment = _ => null;
        Assert.Contains(module.Validate(), e => e.StartsWith("Profiles: azure needs", StringComparison.Ordinal));
        var bad = new ModuleSettings();
        bad.Azure.ConnectionString = $"HostName={Hub};DeviceId=d;ModuleId=m;SharedAccessKey={KeyBase64}";
        bad.Azure.OutputName = "a&b";
        bad.Azure.TokenLifetimeMinutes = 1;
        List<string> errors = bad.Validate();
        Assert.Contains(errors, e => e.StartsWith("Azure:OutputName:", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("Azure:TokenLifetimeMinutes:", StringComparison.Ordinal));
        Assert.DoesNotContain(errors, e => e.Contains(KeyBase64, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Connection_options_are_mqtt_311_with_the_module_identity_a_fresh_token_and_no_clean_session()
    {
        var settings = new AzureSettings { ConnectionString = $"HostName={Hub};DeviceId=pi-kitchen;ModuleId=edgeslm;SharedAccessKey={KeyBase64};GatewayHostName=edge-gw" };
        using IotHubConnector connector = IotHubConnector.Create(settings, new MqttSettings(), NullLogger.Instance);
        DateTimeOffset before = DateTimeOffset.UtcNow;
        MQTTnet.MqttClientOptions options = await connector.BuildOptionsAsync(TestContext.Current.CancellationToken);
        Assert.Equal(MqttProtocolVersion.V311, options.ProtocolVersion);
        Assert.Equal("pi-kitchen/edgeslm", options.ClientId);
        Assert.False(options.CleanSession);
        Assert.Equal("myhub.azure-devices.net/pi-kitchen/edgeslm/?api-version=2021-04-12", options.Credentials.GetUserName(options));
        string password = Encoding.UTF8.GetString(options.Credentials.GetPassword(options));
        var endpoint = Assert.IsType<MQTTnet.MqttClientTcpOptions>(options.ChannelOptions);
        Assert.Equal("edge-gw", ((System.Net.DnsEndPoint)endpoint.RemoteEndpoint).Host);
        Assert.Equal(8883, ((System.Net.DnsEndPoint)endpoint.RemoteEndpoint).Port);
        Assert.True(endpoint.TlsOptions.UseTls);

        long se = long.Parse(password[(password.LastIndexOf("&se=", StringComparison.Ordinal) + 4)..]);
        Assert.InRange(se, before.AddMinutes(60).ToUnixTimeSeconds() - 1, DateTimeOffset.UtcNow.AddMinutes(60).ToUnixTimeSeconds() + 1);
        Assert.Equal(SasToken.Create($"{Hub}/devices/pi-kitchen/modules/edgeslm", Convert.FromBase64String(KeyBase64), se), password);
        // Renewed at 80% of the lifetime: 48 of 60 minutes.
        Assert.InRange(connector.RenewAt, before.AddMinutes(47.9), DateTimeOffset.UtcNow.AddMinutes(48.1));
    }

    [Fact]
    public async Task Edge_module_tokens_are_signed_by_the_workload_api_on_its_unix_socket()
    {
        byte[] key = RandomNumberGenerator.GetBytes(32);
        using var workload = new AzureWorkloadServer(key);
        var settings = new AzureSettings { Environment = workload.Environment("edgehub") };
        Assert.Empty(settings.Validate());
        using IotHubConnector connector = IotHubConnector.Create(settings, new MqttSettings(), NullLogger.Instance);
        (string token, DateTimeOffset expires) = await connector.Tokens.CreateAsync(TestContext.Current.CancellationToken);

        Assert.Equal(SasToken.Create("myhub.azure-devices.net/devices/pi-kitchen/modules/edgeslm", key, expires.ToUnixTimeSeconds()), token);
        Assert.Equal("POST /modules/edgeslm/genid/637000000000000000/sign?api-version=2019-01-30 HTTP/1.1", Assert.Single(workload.Requests));
        Assert.Equal("edgehub", connector.Host);
    }

    [Fact]
    public async Task Workload_api_refusal_and_trust_bundle_are_read()
    {
        using var certificateKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using X509Certificate2 ca = new CertificateRequest("CN=edge ca", certificateKey, HashAlgorithmName.SHA256)
            .CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        using var workload = new AzureWorkloadServer(RandomNumberGenerator.GetBytes(32), ca.ExportCertificatePem());
        using var client = new WorkloadClient(workload.SocketPath, "2019-01-30");
        X509Certificate2Collection bundle = await client.GetTrustBundleAsync(TestContext.Current.CancellationToken);
        Assert.Equal(ca.Thumbprint, Assert.Single(bundle).Thumbprint);
        var refused = await Assert.ThrowsAsync<WorkloadException>(() => client.SignAsync("other module", "1", [1, 2, 3], TestContext.Current.CancellationToken));
        Assert.Contains("404", refused.Message);
    }

    /// <summary>HMAC as RFC 2104 defines it: H((K ^ opad) || H((K ^ ipad) || m)), 64-byte blocks.</summary>
    private static byte[] Rfc2104(byte[] key, byte[] message)
    {
        byte[] block = new byte[64];
        (key.Length > 64 ? SHA256.HashData(key) : key).CopyTo(block, 0);
        byte[] inner = block.Select(b => (byte)(b ^ 0x36)).Concat(message).ToArray();
        byte[] outer = block.Select(b => (byte)(b ^ 0x5c)).Concat(SHA256.HashData(inner)).ToArray();
        return SHA256.HashData(outer);
    }
}
