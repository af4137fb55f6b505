; SPDX-License-Identifier: Apache-2.0
; Boot-sector guest for the filter tests: banner on COM1, then the string
; stored in disk LBA 1 (read through the BIOS), so the serial log proves the
; guest booted from, and read its data through, the encrypted export.
;
; Build: nasm -f bin -o guest.bin guest.asm (exactly 512 bytes).
; Serial output: "VMCRYPT-GUEST-BOOT\r\nDISK: <string>\r\nHALT\r\n", or
; "DISK-READ-FAILED <ah>\r\n" when INT 13h reports an error.

bits 16
org 0x7c00

COM1		equ 0x3f8
BUFFER		equ 0x8000	; where LBA 1 lands (free conventional memory)
MAX_STRING	equ 480		; printed at most, NUL or not

start:
	cli
	xor ax, ax
	mov ds, ax
	mov es, ax
	mov ss, ax
	mov sp, 0x7c00
	sti
	cld
	mov [boot_drive], dl	; the BIOS passes the boot drive in DL

	; 115200 8N1, FIFO on, interrupts off: output is polled.
	mov dx, COM1 + 1	; IER
	xor al, al
	out dx, al
	mov dx, COM1 + 3	; LCR: DLAB to set the divisor
	mov al, 0x80
	out dx, al
	mov dx, COM1		; divisor low: 1 = 115200 baud
	mov al, 1
	out dx, al
	mov dx, COM1 + 1	; divisor high
	xor al, al
	out dx, al
	mov dx, COM1 + 3	; 8 bits, no parity, 1 stop, DLAB off
	mov al, 0x03
	out dx, al
	mov dx, COM1 + 2	; FCR: enable and clear the FIFOs
	mov al, 0xc7
	out dx, al
	mov dx, COM1 + 4	; MCR: DTR and RTS
	mov al, 0x03
	out dx, al

	mov si, banner
	call puts

	; Extended read (AH=42h) of one sector at LBA 1 described by the DAP.
	mov si, dap
	mov ah, 0x42
	mov dl, [boot_drive]
	int 0x13
	jc read_failed

	mov si, disk_prefix
	call puts
	mov si, BUFFER
	mov cx, MAX_STRING
.next:
	lodsb
	test al, al
	jz .done
	call putc
	loop .next
.done:
	mov si, crlf
	call puts
	mov si, halted
	call puts
	jmp halt

read_failed:
	mov bl, ah		; the BIOS status code, shown in hex
	mov si, fail_msg
	call puts
	mov al, bl
	shr al, 4
	call puthex
	mov al, bl
	and al, 0x0f
	call puthex
	mov si, crlf
	call puts

halt:
	cli
	hlt
	jmp halt		; an NMI can wake hlt up

; Print the NUL-terminated string at DS:SI.
puts:
	lodsb
	test al, al
	jz .ret
	call putc
	jmp puts
.ret:
	ret

; One hex digit (AL = 0..15).
puthex:
	add al, '0'
	cmp al, '9'
	jbe putc
	add al, 'a' - '0' - 10
	; fall through

; Send AL on COM1 once the transmit holding register is empty.
putc:
	push dx
	push ax
	mov dx, COM1 + 5	; LSR
.wait:
	in al, dx
	test al, 0x20
	jz .wait
	pop ax
	mov dx, COM1
	out dx, al
	pop dx
	ret

banner		db "VMCRYPT-GUEST-BOOT", 13, 10, 0
disk_prefix	db "DISK: ", 0
crlf		db 13, 10, 0
halted		db "HALT", 13, 10, 0
fail_msg	db "DISK-READ-FAILED ", 0
boot_drive	db 0

align 4
dap:
	db 0x10			; size of this packet
	db 0
	dw 1			; sectors to read
	dw BUFFER, 0		; offset, segment of the buffer
	dq 1			; first LBA

	times 510 - ($ - $$) db 0
	dw 0xaa55
