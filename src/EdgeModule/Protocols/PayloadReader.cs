using System.Buffers;
using System.Security.Cryptography;
using System.Text;

namespace EdgeSlm.EdgeModule.Protocols;

/// <summary>The checks every incoming payload passes before a protocol reads it: size, then strict UTF-8.</summary>
public static class PayloadReader
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>The payload as text, or the reason it is not acceptable.</summary>
    public static bool TryReadText(ReadOnlySequence<byte> payload, int maxBytes, out string text, out string reason)
    {
        text = "";
        if (payload.Length > maxBytes)
        {
            reason = $"payload of {payload.Length} bytes is over the limit of {maxBytes} bytes";
            return false;
        }
        try
        {
            text = StrictUtf8.GetString(payload.ToArray());
        }
        catch (DecoderFallbackException)
        {
            reason = "payload is not valid UTF-8";
            return false;
        }
        if (text.Length > 0 && text[0] == '\uFEFF')
        {
            text = text[1..];
        }
        reason = "";
        return true;
    }

    /// <summary>
    /// A request id for a message that brought none: derived from topic and payload, so the broker's redelivery of
    /// the same message gets the same id (and so does an identical message, which is the same request).
    /// </summary>
    public static string DerivedId(string topic, ReadOnlySequence<byte> payload)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        hash.AppendData(Encoding.UTF8.GetBytes(topic));
        hash.AppendData([0]);
        foreach (ReadOnlyMemory<byte> segment in payload)
        {
            hash.AppendData(segment.Span);
        }
        return "m-" + Convert.ToHexStringLower(hash.GetHashAndReset().AsSpan(0, 8));
    }
}
