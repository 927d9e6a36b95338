using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace EdgeSlm.EdgeModule.Azure;

/// <summary>
/// Shared access signatures as IoT Hub checks them:
/// <c>SharedAccessSignature sr={urlenc(resourceURI)}&amp;sig={urlenc(base64(HMAC-SHA256(key, urlenc(resourceURI) + "\n" + expiry)))}&amp;se={expiry}</c>,
/// expiry in Unix seconds, no <c>skn</c> for a device's or module's own key.
/// </summary>
public static class SasToken
{
    /// <summary><c>{hub}/devices/{deviceId}</c> or <c>{hub}/devices/{deviceId}/modules/{moduleId}</c>.</summary>
    public static string ResourceUri(string hostName, string deviceId, string? moduleId) =>
        moduleId is null ? $"{hostName}/devices/{deviceId}" : $"{hostName}/devices/{deviceId}/modules/{moduleId}";

    /// <summary>RFC 3986 percent-encoding with upper-case hex, as the Azure SDKs encode (<c>/</c> becomes <c>%2F</c>).</summary>
    public static string UrlEncode(string value) => Uri.EscapeDataString(value);

    /// <summary>What gets signed: the encoded resource URI, a line feed, the expiry.</summary>
    public static byte[] StringToSign(string resourceUri, long expiry) =>
        Encoding.UTF8.GetBytes(UrlEncode(resourceUri) + "\n" + expiry.ToString(CultureInfo.InvariantCulture));

    public static byte[] Sign(ReadOnlySpan<byte> key, ReadOnlySpan<byte> stringToSign) => HMACSHA256.HashData(key, stringToSign);

    /// <summary>The token from a signature that was computed elsewhere (the workload API signs for Edge modules).</summary>
    public static string Format(string resourceUri, long expiry, ReadOnlySpan<byte> signature) =>
        $"SharedAccessSignature sr={UrlEncode(resourceUri)}&sig={UrlEncode(Convert.ToBase64String(signature))}&se={expiry.ToString(CultureInfo.InvariantCulture)}";

    public static string Create(string resourceUri, ReadOnlySpan<byte> key, long expiry) =>
        Format(resourceUri, expiry, Sign(key, StringToSign(resourceUri, expiry)));
}

/// <summary>Computes the HMAC-SHA256 a SAS token carries: with the key itself, or by asking the Edge runtime's HSM.</summary>
public abstract class SasSigner
{
    public abstract Task<byte[]> SignAsync(byte[] stringToSign, CancellationToken cancellation);
}

/// <summary>Signs with the connection string's key, which stays in this object.</summary>
public sealed class SharedKeySigner(byte[] key) : SasSigner
{
    public override Task<byte[]> SignAsync(byte[] stringToSign, CancellationToken cancellation) => Task.FromResult(SasToken.Sign(key, stringToSign));

    public override string ToString() => "SharedKeySigner";
}

/// <summary>Issues tokens for one identity, each valid for <paramref name="lifetime"/> from now.</summary>
public sealed class SasTokenProvider(string resourceUri, SasSigner signer, TimeSpan lifetime, TimeProvider? time = null)
{
    private readonly TimeProvider _time = time ?? TimeProvider.System;

    public string ResourceUri => resourceUri;
    public TimeSpan Lifetime => lifetime;

    /// <summary>A fresh token and the moment it stops being accepted.</summary>
    public async Task<(string Token, DateTimeOffset Expires)> CreateAsync(CancellationToken cancellation)
    {
        long expiry = _time.GetUtcNow().Add(lifetime).ToUnixTimeSeconds();
        byte[] signature = await signer.SignAsync(SasToken.StringToSign(resourceUri, expiry), cancellation);
        return (SasToken.Format(resourceUri, expiry, signature), DateTimeOffset.FromUnixTimeSeconds(expiry));
    }
}
