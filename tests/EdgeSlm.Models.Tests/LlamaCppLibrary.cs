using LLama.Native;

namespace EdgeSlm.Models.Tests;

/// <summary>
/// llama.cpp, the oracle of the parity tests, through LLamaSharp: its native library takes its configuration once,
/// before the first call into it, so every test class that calls it configures it here first.
/// </summary>
internal static class LlamaCppLibrary
{
    private static readonly Lock Gate = new();
    private static bool _configured;

    public static void Configure()
    {
        lock (Gate)
        {
            if (_configured)
            {
                return;
            }
            // llama.cpp logs every load step; keep warnings and errors only.
            NativeLibraryConfig.All.WithLogCallback((level, message) =>
            {
                if (level is LLamaLogLevel.Warning or LLamaLogLevel.Error) Console.Error.Write(message);
            });
            _configured = true;
        }
    }
}
